"""Fill the generated sections of README.md.

README.md is written by hand, except the blocks between `<!-- begin: NAME -->` and `<!-- end: NAME -->`
markers listed in `SECTIONS`, which are copied from their single source:

    results         the compact results table, from examples/results/*.json (examples/make_results_table.py)
    data-licenses   the license table of docs/data-licenses.md

    python docs/build_readme.py           # rewrite those blocks (`make results` runs it)
    python docs/build_readme.py --check   # exit 1 when README.md is out of date
"""

import importlib.util
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_README_BYTES = 15 * 1024


def _block(text, name):
    """The text between the `begin: name` / `end: name` markers of a Markdown file."""
    match = re.search(rf"<!-- begin: {name}\b[^>]*-->\n(.*?)<!-- end: {name} -->", text, re.S)
    if match is None:
        raise ValueError(f"No `<!-- begin: {name} -->` ... `<!-- end: {name} -->` block found.")
    return match.group(1).strip()


def _results_table():
    spec = importlib.util.spec_from_file_location("make_results_table", ROOT / "examples" / "make_results_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.render_readme(module.load_documents())


SECTIONS = {
    "results": _results_table,
    "data-licenses": lambda: _block((ROOT / "docs" / "data-licenses.md").read_text(), "data-licenses"),
}


def build(text):
    """README text with every generated block refreshed."""
    for name, render in SECTIONS.items():
        pattern = re.compile(rf"(<!-- begin: {name} -->\n).*?(<!-- end: {name} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"README.md has no `<!-- begin: {name} -->` ... `<!-- end: {name} -->` block.")
        body = render().strip()
        text = pattern.sub(lambda m, body=body: m.group(1) + body + "\n" + m.group(2), text)
    return text


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    current = README.read_text()
    text = build(current)
    size = len(text.encode())
    if "--check" in argv:
        if text != current:
            print("README.md is out of date: run `python docs/build_readme.py` (or `make results`).")
            return 1
        return 0
    README.write_text(text)
    print(f"wrote README.md ({size / 1024:.1f} KB)")
    if size > MAX_README_BYTES:
        print(f"README.md is {size} bytes, above the {MAX_README_BYTES}-byte limit: move detail into docs/.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
