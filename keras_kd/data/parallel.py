"""English → other-language sentence pairs from translation catalogs that pip installs.

Cross-lingual distillation (e.g. an English teacher's embedding or sentiment taught to a
multilingual student, Reimers & Gurevych 2020) needs parallel text. These sources ship it inside
wheels, readable offline (the first four with the standard library):

| source       | install                                                      | pairs                                  |
|--------------|--------------------------------------------------------------|----------------------------------------|
| `jupyterlab` | `pip install --no-deps jupyterlab-language-pack-zh-CN` (…)   | UI strings and full sentences (BSD-3)  |
| `django`     | `pip install django`                                         | 99 languages, short UI strings (BSD-3) |
| `sphinx`     | `pip install --no-deps sphinx`                               | ~70 languages, doc-tool messages (BSD-2)|
| `pycountry`  | `pip install pycountry`                                      | ISO country/language/currency/script names, ~160 locales (LGPL-2.1) |
| `babel`      | `pip install babel`                                          | CLDR display names of territories, languages, currencies, scripts (Unicode license) |
| `apps`       | `pip install --no-deps` the wheels in `APP_DISTRIBUTIONS` (`make data-extra`) | UI strings and help sentences of web apps and tools, whichever are installed (Weblate GPL-3.0+; pretix AGPL-3.0; Superset Apache-2.0; Wagtail, Oscar, django CMS, helpdesk, DRF BSD-3; allauth, two-factor MIT; Misago GPL-2.0; Mercurial GPL-2.0+) |

`load_parallel` reads the installed catalogs; `read_parallel_file` reads your own `.tsv` / `.csv` /
`.jsonl` pairs; `split_held_out` holds out English strings that no training pair touches.

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

SOURCES = ("jupyterlab", "django", "sphinx", "pycountry", "babel", "apps")
APPS = (  # import names of web apps whose wheels ship gettext catalogs (source "apps")
    "weblate",
    "pretix",
    "wagtail",
    "oscar",
    "cms",
    "helpdesk",
    "allauth",
    "two_factor",
    "rest_framework",
    "superset",
    "misago",
    "mercurial",
)
APP_DISTRIBUTIONS = (  # the wheels that install `APPS` (pip names; requirements-data-extra.txt lists the same)
    "weblate",
    "pretix",
    "wagtail",
    "django-oscar",
    "django-cms",
    "django-helpdesk",
    "django-allauth",
    "django-two-factor-auth",
    "djangorestframework",
    "apache-superset",
    "misago",
    "mercurial",
)
DEFAULT_SOURCES = ("jupyterlab", "django")  # sentence-like UI strings; the others add names/phrases
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
    elif source in ("django", "sphinx", "pycountry"):
        root = _package_root(source)
        if root is None:
            return {}
        patterns = {
            "django": ("conf/locale/*/LC_MESSAGES/*.mo", "contrib/*/locale/*/LC_MESSAGES/*.mo"),
            "sphinx": ("locale/*/LC_MESSAGES/*.mo",),
            "pycountry": ("locales/*/LC_MESSAGES/*.mo",),
        }[source]
        _add_mo_files(found, (p for pattern in patterns for p in root.glob(pattern)))
    elif source == "apps":
        for package in APPS:
            root = _package_root(package)
            if root is not None:
                _add_mo_files(found, root.glob("**/LC_MESSAGES/*.mo"))
    elif source == "babel":
        if _package_root("babel") is not None:
            from babel import localedata

            found = {
                code: [code]
                for code in localedata.locale_identifiers()
                if not code.startswith("en")
            }
    else:
        raise ValueError(
            f"Unknown source {source!r}. Expected one of {SOURCES}. Received: source={source!r}"
        )
    return found


def _add_mo_files(found, paths):
    """Adds `.../<code>/LC_MESSAGES/*.mo` paths to `found[code]`, skipping English and variants."""
    for path in sorted(paths):
        code = path.parent.parent.name
        if (
            "@" in code or "." in code or language_key(code)[0] == "en"
        ):  # sr@latin, zh_TW.Big5, en_GB
            continue
        found.setdefault(code, []).append(path)


def _package_root(name):
    """The folder of an installed package, found without importing it (None when absent)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return pathlib.Path(list(spec.submodule_search_locations)[0])


BABEL_TABLES = ("territories", "languages", "currencies", "scripts")


def read_babel(locale_code, tables=BABEL_TABLES):
    """`(english, translation)` CLDR display names of one babel locale (`"de"`, `"zh_Hans_CN"`)."""
    from babel import Locale

    english, other = Locale("en"), Locale.parse(locale_code)
    pairs = []
    for table in tables:
        names = getattr(other, table)
        pairs.extend(
            (name, names[key]) for key, name in getattr(english, table).items() if key in names
        )
    return list(_clean_pairs(pairs))


def _babel_locales(language, codes):
    """The one babel locale that serves `language` best: the exact code, else the base language."""
    wanted = language.replace("-", "_")
    lang, region = language_key(wanted)
    if lang in ("zh_cn", "zh_tw"):
        exact = "zh_Hans" if lang == "zh_cn" else "zh_Hant"
        return [exact] if exact in codes else []
    if wanted in codes:
        return [wanted]
    if region:
        regional = [c for c in codes if c.lower() == f"{lang}_{region}"]
        if regional:
            return regional
    return [lang] if lang in codes else []


_INSTALL = {
    "jupyterlab": "pip install --no-deps jupyterlab-language-pack-zh-CN (or -de-DE, -fr-FR, ...)",
    "django": "pip install django",
    "sphinx": "pip install --no-deps sphinx",
    "pycountry": "pip install pycountry",
    "babel": "pip install babel",
    "apps": "pip install --no-deps " + " ".join(APP_DISTRIBUTIONS),
}


def available_languages(sources=DEFAULT_SOURCES):
    """Language codes with at least one catalog installed, per source."""
    return {source: sorted(catalog_files(source)) for source in sources}


def load_parallel(languages, sources=DEFAULT_SOURCES, dedupe=True):
    """English → `language` sentence pairs from the installed catalogs.

    Args:
        languages: language codes (`"zh_CN"`, `"de"`, `"fr_FR"`, ...); see `languages_match`.
        sources: any of `SOURCES` (`"jupyterlab"`, `"django"`, `"sphinx"`, `"pycountry"`,
            `"babel"`, `"apps"`); default `DEFAULT_SOURCES` (JupyterLab and Django).
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
            if source == "babel":
                for code in _babel_locales(language, catalogs[source]):
                    pairs.extend(read_babel(code))
                continue
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


# ---------------------------------------------------------------- your own files
def read_parallel_file(path, source_column=0, target_column=1, delimiter=None, skip_header=False):
    """`(source, target)` pairs from a `.tsv`/`.txt` (tab), `.csv` or `.jsonl` file.

    Args:
        path: the file. `.jsonl`: one object a line; columns are keys (default `"source"`/`"target"`
            when the column arguments are left at 0/1). Other suffixes are delimited text.
        source_column, target_column: column index (or header name when `skip_header=True`,
            or key for `.jsonl`).
        delimiter: overrides the suffix's delimiter (tab for `.tsv`/`.txt`, comma for `.csv`).
        skip_header: the first row is a header (named columns allowed).

    Returns:
        `[(source, target), ...]` in file order, rows with an empty side skipped.
    """
    import csv

    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Parallel text file not found. Received: path={str(path)!r}")
    pairs = []
    if path.suffix == ".jsonl":
        src = "source" if source_column == 0 else source_column
        tgt = "target" if target_column == 1 else target_column
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if src not in row or tgt not in row:
                raise ValueError(
                    f"Line {number} of {path.name} has no key {src!r} or {tgt!r}. "
                    f"Received: keys={sorted(row)}"
                )
            pairs.append((str(row[src]).strip(), str(row[tgt]).strip()))
    else:
        if delimiter is None:
            delimiter = "," if path.suffix == ".csv" else "\t"
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f, delimiter=delimiter))
        columns = (source_column, target_column)
        if skip_header and rows:
            header, rows = rows[0], rows[1:]
            columns = tuple(header.index(c) if isinstance(c, str) else c for c in columns)
        for number, row in enumerate(rows, 1 + int(skip_header)):
            if not row:
                continue
            if max(columns) >= len(row):
                raise ValueError(
                    f"Row {number} of {path.name} has {len(row)} column(s); expected at least "
                    f"{max(columns) + 1}. Received: row={row!r}"
                )
            pairs.append((row[columns[0]].strip(), row[columns[1]].strip()))
    return [(s, t) for s, t in pairs if s and t]


# ---------------------------------------------------------------- held-out split
def normalize_text(text):
    """Case-folded letters and digits only: `"Save As…"` → `"saveas"` (the key of leak checks)."""
    return "".join(c for c in text.casefold() if c.isalnum())


def drop_held_out(pairs_by_language, test):
    """Training pairs that touch no held-out string.

    A pair is dropped when its English or its translation (normalised with `normalize_text`)
    equals a held-out English string or any translation of one, in any language or source.

    Args:
        pairs_by_language: `{language: [(english, translation), ...]}`.
        test: `{language: [(english, translation), ...]}` held out (e.g. from `split_held_out`).
    """
    held = {normalize_text(s) for pairs in test.values() for pair in pairs for s in pair}
    held.discard("")
    return {
        language: [
            (en, x)
            for en, x in pairs
            if normalize_text(en) not in held and normalize_text(x) not in held
        ]
        for language, pairs in pairs_by_language.items()
    }


def split_held_out(pairs_by_language, n_test, languages=None, seed=0, min_chars=4, candidates=None):
    """Hold out `n_test` English strings translated into every evaluation language.

    Candidates are English strings of at least `min_chars` characters that have a translation in
    every language of `languages` (default: all keys), restricted to `candidates` when given (e.g.
    the sentence-like strings of some sources only); `n_test` of them are drawn with
    `numpy.random.default_rng(seed)`. Every pair that touches a held-out English string or any
    of its translations (see `drop_held_out`) leaves the training pairs, in every language.

    Returns:
        `(train, test)`: `train` is `{language: [(english, translation), ...]}` for every language
        in `pairs_by_language`; `test` is `{language: [(english, translation), ...]}` for the
        evaluation languages, aligned on the sorted held-out English strings (the first
        translation of each string is used).
    """
    import numpy as np

    languages = list(pairs_by_language) if languages is None else list(languages)
    missing = [lang for lang in languages if lang not in pairs_by_language]
    if missing:
        raise ValueError(
            f"`languages` must be keys of `pairs_by_language`. Received: languages={languages} "
            f"(missing {missing})"
        )
    if n_test < 1:
        raise ValueError(f"`n_test` must be a positive integer. Received: n_test={n_test}")
    first = {lang: {} for lang in languages}
    for lang in languages:
        for en, x in pairs_by_language[lang]:
            first[lang].setdefault(en, x)
    common = set.intersection(*(set(table) for table in first.values())) if languages else set()
    if candidates is not None:
        common &= set(candidates)
    common = sorted(s for s in common if len(s) >= min_chars)
    if not common:
        raise ValueError(
            f"No English string of at least {min_chars} characters is translated into every "
            f"language of {languages}."
        )
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(common, size=min(n_test, len(common)), replace=False).tolist())
    test = {lang: [(en, first[lang][en]) for en in chosen] for lang in languages}
    chosen_set = set(chosen)
    every_translation = {
        lang: [(en, x) for en, x in pairs if en in chosen_set]
        for lang, pairs in pairs_by_language.items()
    }
    train = drop_held_out(pairs_by_language, {**every_translation, **test})
    return train, test


# ---------------------------------------------------------------- batching
def similar_batches(vectors, batch_size, rows=None, bits=7, window=8, rng=None):
    """Batches of row indices whose rows have similar vectors (hard in-batch negatives).

    For an in-batch contrastive loss (sentence-transformers' MultipleNegativesRankingLoss) random
    batches hold mostly easy negatives. Here every row gets a SimHash code: the signs of its
    vector's projections on `bits` random hyperplanes (fresh ones on every call). Rows sorted by
    code are cut into windows of `window * batch_size` consecutive rows, and each window's rows are
    dealt at random into `window` batches; the batch order is shuffled. With `window > 1` a batch
    rarely holds two rows of the same key (e.g. translations of one English string). Rows that do
    not fill a whole window are left out, as a partial last batch would be.

    Args:
        vectors: `(n, d)` array: one vector per row, or per key when `rows` is given.
        batch_size: rows per batch.
        rows: optional `(m,)` int array: row i uses `vectors[rows[i]]` (e.g. the teacher
            embedding of row i's English string).
        bits: number of random hyperplanes (2**bits codes).
        window: batches dealt from one window of consecutive sorted rows.
        rng: a `numpy.random.Generator` (default `numpy.random.default_rng(0)`).

    Returns:
        `(num_batches, batch_size)` int64 array of row indices, each row at most once.
    """
    import numpy as np

    vectors = np.asarray(vectors, dtype="float64")
    if vectors.ndim != 2:
        raise ValueError(f"`vectors` must be a 2-D array. Received: shape={vectors.shape}")
    for name, value in (("batch_size", batch_size), ("bits", bits), ("window", window)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    rng = np.random.default_rng(0) if rng is None else rng
    codes = (vectors @ rng.standard_normal((vectors.shape[1], bits)) > 0) @ (1 << np.arange(bits))
    if rows is not None:
        codes = codes[np.asarray(rows)]
    order = np.lexsort((rng.random(len(codes)), codes))
    windows = len(order) // (window * batch_size)
    dealt = order[: windows * window * batch_size].reshape(windows, window * batch_size)
    dealt = np.take_along_axis(dealt, np.argsort(rng.random(dealt.shape), axis=1), axis=1)
    batches = dealt.reshape(windows * window, batch_size)
    return batches[rng.permutation(len(batches))].astype("int64")
