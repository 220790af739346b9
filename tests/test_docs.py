"""The README and the documentation site: code blocks run, no internal wording, generated parts current.

- Every ```python block of README.md and docs/**/*.md runs, each in a fresh namespace inside a temporary
  working directory. A block that needs a download or a long run opts out with ```python title="not run"
  or an HTML comment `<!-- not run -->` on the line before its fence.
- README.md stays under 15 KB and starts with the two commands.
- No machine paths or internal wording in the README or the docs.
- The results pages and the README's generated blocks match examples/results/*.json.
- `mkdocs build --strict` passes (when MkDocs is installed, as in the `dev` extra).
"""

import importlib.util
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_BYTES = 15 * 1024
NOT_RUN = re.compile(r'title="not run"|<!--\s*not run\s*-->')


def markdown_files():
    excluded = DOCS / "readme"
    return [README] + sorted(p for p in DOCS.rglob("*.md") if excluded not in p.parents)


def python_blocks(path):
    """`(line number, code, runnable)` of each ```python fenced block of a Markdown file."""
    lines = path.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        match = re.match(r"^(\s*)(`{3,}|~{3,})\s*(\S*)(.*)$", lines[i])
        if not match:
            i += 1
            continue
        indent, fence, language, info = match.groups()
        start = i
        i += 1
        body = []
        while i < len(lines) and not re.match(rf"^\s*{re.escape(fence)}\s*$", lines[i]):
            body.append(lines[i])
            i += 1
        i += 1  # the closing fence
        if language.lower() not in ("python", "py"):
            continue
        previous = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        runnable = not (NOT_RUN.search(info) or NOT_RUN.search(previous))
        blocks.append((start + 1, textwrap.dedent("\n".join(body)), runnable))
    return blocks


def runnable_blocks():
    """Blocks to run; a block repeated verbatim on another page (the README's example) runs once."""
    params, seen = [], set()
    for path in markdown_files():
        for line, code, runnable in python_blocks(path):
            if runnable and code not in seen:
                seen.add(code)
                name = f"{path.relative_to(ROOT)}:{line}"
                params.append(pytest.param(code, id=name))
    return params


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- the block parser itself
def test_python_blocks_parser_honours_opt_outs(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# t\n\n```python\nx = 1\n```\n\n```python title=\"not run\"\ndownload()\n```\n\n"
        "<!-- not run -->\n```python\ntrain_for_hours()\n```\n\n```bash\nmake demo\n```\n\n"
        "- item\n\n    ```python\n    y = 2\n    ```\n"
    )
    assert python_blocks(page) == [
        (3, "x = 1", True),
        (7, "download()", False),
        (12, "train_for_hours()", False),
        (22, "y = 2", True),
    ]


def test_docs_have_runnable_blocks():
    ids = [p.id for p in runnable_blocks()]
    assert any(i.startswith("README.md:") for i in ids), "the README's ten-line example must run"
    assert len(ids) >= 10, ids


@pytest.mark.parametrize("code", runnable_blocks())
def test_docs_code_block_runs(code, tmp_path, monkeypatch):
    import keras

    monkeypatch.chdir(tmp_path)  # blocks that save files write them here
    keras.utils.set_random_seed(0)
    keras.backend.clear_session()
    namespace = {"__name__": "__docs__"}
    exec(compile(code, "<docs block>", "exec"), namespace)
    if {"distiller", "x_test", "y_test"} <= set(namespace):  # the README's example: did it learn?
        logs = namespace["distiller"].evaluate(namespace["x_test"], namespace["y_test"], verbose=0, return_dict=True)
        assert logs["accuracy"] > 0.6  # ten classes: chance is 0.1


# ---------------------------------------------------------------- README
def test_readme_is_short_and_starts_with_the_two_commands():
    data = README.read_bytes()
    assert len(data) <= MAX_README_BYTES, f"README.md is {len(data)} bytes; the limit is {MAX_README_BYTES}"
    text = data.decode()
    first_block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert first_block and text.index(first_block.group(0)) < text.index("## ")
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]


def test_readme_links_point_to_existing_files():
    text = README.read_text()
    targets = [t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", text) if "://" not in t and not t.startswith("#")]
    assert targets, "the README links to the docs"
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, missing


def test_readme_has_the_required_sections():
    text = README.read_text()
    for heading in ("## What it is", "## Ten lines around `model.fit`", "## The demo", "## How it compares",
                    "## Results on real data", "## Documentation", "## Data licenses", "## Changelog"):
        assert heading in text, heading
    for project in ("keras.distillation", "TextBrewer", "torchdistill"):
        assert project in text


# ---------------------------------------------------------------- wording
FORBIDDEN = [
    (re.compile(r"/work/|/root/|/home/|/Users/"), "an absolute path from a development machine"),
    (re.compile(r"target_met"), "a bookkeeping field of the result files"),
    (re.compile(r"shared with (?:\d+ )?other jobs", re.I), "a remark about the machine's load"),
    (re.compile(r"minute budget|target (?:NOT )?met\b|for lack of time", re.I), "internal goals and schedule"),
    (re.compile(r"DESIGN\.md|NOTES\.md|OWNERS\.md|PREAMBLE\.md|DATA\.md"), "a project-internal file"),
    (re.compile(r"\bhelper [A-G]\d?\b|\b\d+ helpers\b"), "internal team wording"),
    (re.compile(r"pypi\.org|files\.pythonhosted"), "a package registry host name"),
]


def test_forbidden_patterns_are_caught():
    samples = ["see /work/main/x", "target_met: False", "(2 cores, shared with other jobs)", "DESIGN.md §2"]
    for sample in samples:
        assert any(pattern.search(sample) for pattern, _ in FORBIDDEN), sample
    assert not any(pattern.search("the /usr/share/datasets folder") for pattern, _ in FORBIDDEN)


def test_no_internal_wording_or_machine_paths():
    problems = []
    for path in markdown_files() + [ROOT / "mkdocs.yml"]:
        text = path.read_text()
        for pattern, why in FORBIDDEN:
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                problems.append(f"{path.relative_to(ROOT)}:{line}: {match.group(0)!r} ({why})")
    assert not problems, "\n".join(problems)


def test_table_cells_have_no_pipe_inside_code():
    """Python-Markdown splits table cells on `|` even inside backticks: such a row renders broken."""
    broken = []
    for path in markdown_files():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            codes = re.findall(r"`([^`]*)`", line)
            if line.startswith("|") and any(re.search(r"(?<!\\)\|", code) for code in codes):  # `\|` is escaped
                broken.append(f"{path.relative_to(ROOT)}:{number}")
    assert not broken, broken


# ---------------------------------------------------------------- the command-line page
def _subparsers():
    import argparse

    from keras_kd.cli import main as cli_main

    parser = cli_main.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_cli_page_lists_every_command_and_only_real_options():
    text = (DOCS / "cli.md").read_text()
    subparsers = _subparsers()
    table = re.findall(r"^\| `keras-kd (\w+)", text, re.M)
    assert sorted(table) == sorted(subparsers), "docs/cli.md's table must list every `keras-kd` sub-command"
    unknown = []
    shown = text + (DOCS / "concepts" / "export.md").read_text() + (DOCS / "getting-started.md").read_text()
    for command, options in re.findall(r"^keras-kd (\w+)([^\n]*)", shown.replace("\\\n", " "), re.M):
        known = {flag for action in subparsers[command]._actions for flag in action.option_strings}
        unknown += [f"keras-kd {command} {flag}" for flag in re.findall(r"(?<!\S)(--[\w-]+)", options) if flag not in known]
    assert not unknown, unknown


# ---------------------------------------------------------------- generated content
def test_results_pages_and_readme_blocks_are_current():
    tables = _load("make_results_table", ROOT / "examples" / "make_results_table.py")
    assert tables.main(["--check"]) == 0, "docs/results/ is out of date: run `make results`"
    result = subprocess.run([sys.executable, str(DOCS / "build_readme.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_results_cleaning():
    tables = _load("make_results_table", ROOT / "examples" / "make_results_table.py")
    assert tables.clean_text("5 epochs, seed 0 (weights cached in .cache/examples)") == "5 epochs, seed 0"
    assert tables.clean_text("saved to /work/main/.cache/x.tflite") == "saved to <path>"
    assert tables.clean_text("2 CPU cores — shared with other jobs while running.") == "2 CPU cores."
    assert tables.clean_text("a shared machine (load ~20, 8 helpers running)") == "a busy machine (load ~20)"
    assert tables.clean_text("Machine load: shared with 7 other jobs (load 21)") == "Machine load: busy (load 21)"
    assert tables.clean_text("a | b") == "a / b"
    summary = {"accuracy": 0.5, "target_met": False, "export": {"tflite": "/work/x.tflite", "bytes": 10}}
    assert tables.flatten(summary) == {"accuracy": 0.5, "export.bytes": 10}
    assert tables.format_value({"mean": 0.8912, "std": 0.0031, "values": [0.89, 0.892, 0.8924]}) == "89.1 ± 0.3 (3 seeds)"
    assert tables.format_params(1_020_000) == "1.02 M" and tables.format_params(9_100) == "9.1 k"


def test_results_pages_render_every_row(tmp_path):
    tables = _load("make_results_table", ROOT / "examples" / "make_results_table.py")
    results = tmp_path / "results"
    results.mkdir()
    document = {
        "example": "toy", "command": "python examples/toy.py --seeds 0 1", "hardware": "2 CPU cores",
        "date": "2026-01-01", "summary": {"target_met": True, "gain": 0.012},
        "rows": [
            {"model": "teacher", "role": "teacher", "params": 2_000_000, "metrics": {"accuracy": 0.9}, "time_s": 300},
            {"model": "student", "role": "student", "params": 5_000,
             "metrics": {"accuracy": {"mean": 0.85, "std": 0.01, "values": [0.84, 0.86]}}, "time_s": 30},
        ],
    }
    (results / "toy.json").write_text(__import__("json").dumps(document))
    (results / "smoke.json").write_text('{"example": "smoke", "smoke": true, "rows": []}')
    out = tmp_path / "pages"
    assert tables.main(["--results", str(results), "--output", str(out)]) == 0
    page = (out / "toy.md").read_text()
    assert "python examples/toy.py --seeds 0 1" in page
    assert "| teacher | teacher | 2.00 M | accuracy 90.0 | 5.0 min |" in page
    assert "accuracy 85.0 ± 1.0 (2 seeds)" in page
    assert "target" not in page and "| gain | 0.012 |" in page
    assert "smoke" not in (out / "index.md").read_text()
    assert tables.main(["--results", str(results), "--output", str(out), "--check"]) == 0


# ---------------------------------------------------------------- the site
@pytest.mark.skipif(shutil.which("mkdocs", path=str(pathlib.Path(sys.executable).parent)) is None
                    and importlib.util.find_spec("mkdocs") is None, reason='MkDocs is not installed: pip install -e ".[docs]"')
def test_mkdocs_build_strict(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert (tmp_path / "site" / "api" / "distiller" / "index.html").exists()


# ---------------------------------------------------------------- the quick-start example
@pytest.mark.large
def test_quickstart_example_distills(tmp_path):
    quickstart = _load("quickstart", ROOT / "examples" / "quickstart.py")
    teacher_acc, student_acc = quickstart.main(["--epochs", "1", "--output", str(tmp_path)])
    assert teacher_acc > 0.85
    assert student_acc > 0.6  # ten classes: chance is 0.1
    assert (tmp_path / "student.keras").exists()
