"""Parallel sentence pairs from JupyterLab language packs and Django catalogs."""

import json
import struct

import pytest

from keras_kd.data import parallel


def write_mo(path, messages):
    """A minimal GNU .mo file from `{msgid: msgstr}` (bytes keys/values may hold NUL / EOT)."""
    items = sorted((k.encode(), v.encode()) for k, v in messages.items())
    n = len(items)
    header_size = 7 * 4
    originals_at, translations_at = header_size, header_size + n * 8
    data_at = translations_at + n * 8
    data, originals, translations = b"", [], []
    for key, _ in items:
        originals.append((len(key), data_at + len(data)))
        data += key + b"\0"
    for _, value in items:
        translations.append((len(value), data_at + len(data)))
        data += value + b"\0"
    table = b"".join(struct.pack("<II", *entry) for entry in originals + translations)
    path.write_bytes(
        struct.pack("<7I", 0x950412DE, 0, n, originals_at, translations_at, 0, 0) + table + data
    )


def test_read_mo_skips_header_plurals_empty_and_context(tmp_path):
    path = tmp_path / "x.mo"
    write_mo(
        path,
        {
            "": "Content-Type: text/plain; charset=UTF-8\nPlural-Forms: nplurals=2; plural=(n != 1);\n",
            "Save": "Speichern",
            "menu\x04Open": "Öffnen",
            "%1 file\x00%1 files": "%1 Datei\x00%1 Dateien",
            "Untranslated": "",
        },
    )
    assert sorted(parallel.read_mo(path)) == [("Open", "Öffnen"), ("Save", "Speichern")]


def test_read_json_flat_and_jed(tmp_path):
    flat = tmp_path / "flat.json"
    flat.write_text(
        json.dumps(
            {
                "": {"domain": "x", "language": "de"},
                "Save": ["Speichern"],
                "ctx\u0004Open": ["Öffnen"],
                "%1 file": ["%1 Datei", "%1 Dateien"],
                "Empty": [""],
            }
        ),
        encoding="utf-8",
    )
    assert sorted(parallel.read_json_catalog(flat)) == [("Open", "Öffnen"), ("Save", "Speichern")]
    jed = tmp_path / "jed.json"
    jed.write_text(
        json.dumps(
            {
                "domain": "x",
                "locale_data": {
                    "x": {"": {"lang": "de"}, "Close": [None, "Schließen"], "Run": ["Ausführen"]}
                },
            }
        ),
        encoding="utf-8",
    )
    assert sorted(parallel.read_json_catalog(jed)) == [("Close", "Schließen"), ("Run", "Ausführen")]


def test_language_matching():
    assert parallel.languages_match("zh_CN", "zh_Hans") and parallel.languages_match(
        "zh-CN", "zh_CN"
    )
    assert not parallel.languages_match("zh_CN", "zh_Hant")
    assert parallel.languages_match("de", "de_DE") and parallel.languages_match("de_DE", "de")
    assert parallel.languages_match("es", "es_AR") and not parallel.languages_match(
        "es_ES", "es_AR"
    )


def test_load_parallel_installed_catalogs():
    pairs = parallel.load_parallel(["zh_CN", "de_DE"])
    jupyter = parallel.load_parallel(["zh_CN"], sources="jupyterlab")["zh_CN"]
    django = parallel.load_parallel(["zh_CN"], sources=("django",))["zh_CN"]
    # DATA.md: JupyterLab zh_CN ~3,270 pairs, Django zh_Hans ~791 (counts depend on package versions).
    assert 3000 < len(jupyter) < 3600 and 700 < len(django) < 900
    assert len(pairs["zh_CN"]) == len(set(jupyter) | set(django))  # deduped across sources
    assert len(set(pairs["zh_CN"])) == len(pairs["zh_CN"])
    assert all(s and t and "\x04" not in s for s, t in pairs["zh_CN"])
    assert any(len(s.split()) >= 8 for s, _ in jupyter)  # full sentences, not just UI labels
    assert any(any("\u4e00" <= c <= "\u9fff" for c in t) for _, t in django[:50])
    assert 1000 < len(pairs["de_DE"]) < 2500
    assert pairs == parallel.load_parallel(["zh_CN", "de_DE"])  # deterministic


def test_load_parallel_errors():
    with pytest.raises(
        ValueError, match=r"No installed translation catalog for language 'xx'.*pip install django"
    ):
        parallel.load_parallel("xx", sources="django")
    with pytest.raises(ValueError, match=r"Unknown source 'babel'"):
        parallel.load_parallel("de", sources=("babel",))
