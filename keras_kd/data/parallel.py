"""English → other-language sentence pairs from translation catalogs that pip installs.

Cross-lingual distillation (e.g. an English teacher's embedding or sentiment taught to a
multilingual student, Reimers & Gurevych 2020) needs parallel text. Two BSD-3-licensed sources
ship it inside wheels, readable offline with the standard library:

| source       | install                                                      | pairs                                  |
|--------------|--------------------------------------------------------------|----------------------------------------|
| `jupyterlab` | `pip install --no-deps jupyterlab-language-pack-zh-CN` (…)   | UI strings and full sentences          |
| `django`     | `pip install django`                                         | 99 languages, short UI strings          |

Catalogs are gettext `.mo` files (read with `gettext.GNUTranslations`) and JupyterLab's `.json`
(flat `{msgid: [msgstr]}` or Jed's `{"locale_data": {domain: {...}}}`). Headers (empty msgid),
plural entries and empty translations are skipped, gettext context prefixes (`ctx\\x04msgid`) are
stripped, and pairs are deduplicated.

Language codes match on the base language, and on the region when both codes name one (`de`
takes `de_DE` and `de_AT`; `es_ES` takes `es_ES` and `es` but not `es_AR`). Chinese matches on
script: `zh_CN` = `zh_Hans` = `zh-SG`, `zh_TW` = `zh_Hant` = `zh_HK`.
"""

import gettext
import importlib.util
import json
import pathlib

SOURCES = ("jupyterlab", "django")
_CONTEXT_SEPARATOR = "\x04"
_CHINESE = {"zh_cn": "zh_cn", "zh_hans": "zh_cn", "zh_sg": "zh_cn", "zh": "zh_cn"}
_CHINESE.update({"zh_tw": "zh_tw", "zh_hant": "zh_tw", "zh_hk": "zh_tw", "zh_mo": "zh_tw"})


def language_key(code):
    """`(language, region)` of a code: `"de_DE"` → `("de", "de")`, `"zh_Hans"` → `("zh_cn", None)`."""
    code = code.replace("-", "_").lower()
    if code.startswith("zh"):
        return _CHINESE.get(code, code), None
    language, _, region = code.partition("_")
    return language, region or None


def languages_match(requested, catalog):
    """True when a catalog in language `catalog` serves a request for `requested`.

    Same base language, and the same region when both name one: `"es"` takes every Spanish
    catalog, `"es_ES"` takes `es_ES` and region-less `es` but not `es_AR`.
    """
    (lang_a, region_a), (lang_b, region_b) = language_key(requested), language_key(catalog)
    return lang_a == lang_b and (region_a is None or region_b is None or region_a == region_b)


def _strip_context(msgid):
    return msgid.split(_CONTEXT_SEPARATOR, 1)[1] if _CONTEXT_SEPARATOR in msgid else msgid


def _clean_pairs(entries):
    """`(msgid, msgstr)` → pairs without headers, plurals, empty strings or context prefixes."""
    for msgid, msgstr in entries:
        if not isinstance(msgid, str) or not isinstance(msgstr, str):  # plural forms
            continue
        source, target = _strip_context(msgid).strip(), msgstr.strip()
        if source and target:
            yield source, target


def read_mo(path):
    """`(english, translation)` pairs of one gettext `.mo` catalog."""
    with open(path, "rb") as f:
        catalog = gettext.GNUTranslations(f)._catalog
    return list(_clean_pairs(catalog.items()))


def _json_translation(value):
    """The singular translation of a JSON catalog value, or None (plural or empty)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        strings = [v for v in value if v is not None]
        if value and value[0] is None and len(value) == 2:  # old Jed: [null, "msgstr"]
            strings = value[1:]
        if len(strings) == 1 and isinstance(strings[0], str):
            return strings[0]
    return None


def read_json_catalog(path):
    """`(english, translation)` pairs of a JupyterLab `.json` catalog (flat or Jed `locale_data`)."""
    data = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    if isinstance(data, dict) and "locale_data" in data:
        entries = {}
        for domain in data["locale_data"].values():
            entries.update(domain)
        data = entries
    if not isinstance(data, dict):
        return []
    return list(_clean_pairs((k, _json_translation(v)) for k, v in data.items() if k))


def _site_packages_dirs(prefix):
    """Installed top-level packages whose name starts with `prefix` (found without importing)."""
    roots = []
    spec = importlib.util.find_spec("keras_kd")
    search = (
        {pathlib.Path(p).parent for p in (spec.submodule_search_locations or [])} if spec else set()
    )
    import sys

    search.update(pathlib.Path(p) for p in sys.path if p and pathlib.Path(p).is_dir())
    for root in search:
        roots.extend(p for p in root.glob(f"{prefix}*") if p.is_dir() and "dist-info" not in p.name)
    return sorted(set(roots))


def catalog_files(source):
    """`{language_code: [catalog paths]}` for one source (`"jupyterlab"` or `"django"`)."""
    found = {}
    if source == "jupyterlab":
        for package in _site_packages_dirs("jupyterlab_language_pack_"):
            for folder in package.glob("locale/*/LC_MESSAGES"):
                files = sorted(folder.glob("*.mo")) + sorted(folder.glob("*.json"))
                found.setdefault(folder.parent.name, []).extend(files)
    elif source == "django":
        spec = importlib.util.find_spec("django")
        if spec is None or not spec.submodule_search_locations:
            return {}
        root = pathlib.Path(list(spec.submodule_search_locations)[0])
        patterns = ("conf/locale/*/LC_MESSAGES/*.mo", "contrib/*/locale/*/LC_MESSAGES/*.mo")
        for path in sorted(p for pattern in patterns for p in root.glob(pattern)):
            found.setdefault(path.parent.parent.name, []).append(path)
    else:
        raise ValueError(
            f"Unknown source {source!r}. Expected one of {SOURCES}. Received: source={source!r}"
        )
    return found


_INSTALL = {
    "jupyterlab": "pip install --no-deps jupyterlab-language-pack-zh-CN (or -de-DE, -fr-FR, ...)",
    "django": "pip install django",
}


def available_languages(sources=SOURCES):
    """Language codes with at least one catalog installed, per source."""
    return {source: sorted(catalog_files(source)) for source in sources}


def load_parallel(languages, sources=SOURCES, dedupe=True):
    """English → `language` sentence pairs from the installed catalogs.

    Args:
        languages: language codes (`"zh_CN"`, `"de"`, `"fr_FR"`, ...); see `languages_match`.
        sources: any of `"jupyterlab"`, `"django"`.
        dedupe: drop repeated `(english, translation)` pairs (within a language, across sources).

    Returns:
        `{language: [(english, translation), ...]}` in a deterministic order (sorted catalogs).

    Raises:
        ValueError when no installed catalog has a requested language, naming what to install.
    """
    if isinstance(languages, str):
        languages = [languages]
    sources = (sources,) if isinstance(sources, str) else tuple(sources)
    for source in sources:
        if source not in SOURCES:
            raise ValueError(
                f"Unknown source {source!r}. Expected one of {SOURCES}. Received: sources={sources}"
            )
    catalogs = {source: catalog_files(source) for source in sources}
    result = {}
    for language in languages:
        pairs = []
        for source in sources:
            for code, files in catalogs[source].items():
                if not languages_match(language, code):
                    continue
                for path in files:
                    pairs.extend(read_mo(path) if path.suffix == ".mo" else read_json_catalog(path))
        if not pairs:
            hints = "; ".join(_INSTALL[s] for s in sources)
            raise ValueError(
                f"No installed translation catalog for language {language!r} in sources {sources}. "
                f"Install one: {hints}. Installed: {available_languages(sources)}"
            )
        if dedupe:
            pairs = list(dict.fromkeys(pairs))
        result[language] = pairs
    return result
