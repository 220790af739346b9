"""Parallel sentence pairs from JupyterLab language packs and Django catalogs."""

import json
import pathlib
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
    with pytest.raises(ValueError, match=r"Unknown source 'transifex'"):
        parallel.load_parallel("de", sources=("transifex",))


def test_apps_install_hint_lists_the_extra_requirements():
    listed = pathlib.Path(__file__).parents[2].joinpath("requirements-data-extra.txt").read_text().splitlines()
    assert parallel.APP_DISTRIBUTIONS == tuple(line for line in listed if line and not line.startswith("#"))
    with pytest.raises(ValueError, match=r"Install one: pip install --no-deps weblate pretix wagtail .* misago mercurial\. "):
        parallel.load_parallel("xx", sources="apps")


def test_more_installed_sources():
    """sphinx, pycountry and babel (requirements-data.txt) give more pairs per language."""
    counts = {
        source: len(parallel.load_parallel(["zh_CN"], sources=(source,))["zh_CN"])
        for source in ("sphinx", "pycountry", "babel")
    }
    # Measured: sphinx 868, pycountry 5,120, babel 1,386 (counts depend on package versions).
    assert 500 < counts["sphinx"] < 1500 and 4000 < counts["pycountry"] < 7000
    assert 1000 < counts["babel"] < 2000
    babel_de = dict(parallel.load_parallel("de", sources="babel")["de"])
    assert babel_de["Germany"] == "Deutschland" and babel_de["French"] == "Französisch"
    pycountry_fr = dict(parallel.load_parallel("fr", sources="pycountry")["fr"])
    assert pycountry_fr["Germany"] == "Allemagne"
    every = parallel.load_parallel(["de"], sources=parallel.SOURCES)["de"]
    assert len(every) == len(set(every)) > len(babel_de) + len(pycountry_fr) // 2


def test_apps_source_reads_every_locale_folder(tmp_path, monkeypatch):
    """`apps` globs `**/<code>/LC_MESSAGES/*.mo` inside each installed app package."""
    app = tmp_path / "fakeapp"
    (app / "__init__.py").parent.mkdir()
    (app / "__init__.py").write_text("")
    for folder, code, messages in [
        ("locale", "de", {"Save": "Speichern"}),
        ("admin/translations", "de", {"Delete page": "Seite löschen", "Save": "Speichern"}),
        ("locale", "zh_Hans", {"Save": "保存"}),
        ("locale", "en_GB", {"Color": "Colour"}),  # English variants are skipped
        ("locale", "sr@latin", {"Save": "Sačuvaj"}),
    ]:
        (app / folder / code / "LC_MESSAGES").mkdir(parents=True)
        header = {"": "Content-Type: text/plain; charset=UTF-8\n"}
        write_mo(app / folder / code / "LC_MESSAGES" / "django.mo", {**header, **messages})
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(parallel, "APPS", ("fakeapp", "not_installed_app"))
    files = parallel.catalog_files("apps")
    assert sorted(files) == ["de", "zh_Hans"] and len(files["de"]) == 2
    pairs = parallel.load_parallel(["de", "zh_CN"], sources="apps")
    assert pairs == {
        "de": [("Delete page", "Seite löschen"), ("Save", "Speichern")],
        "zh_CN": [("Save", "保存")],
    }


def test_read_parallel_file(tmp_path):
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("Save\tSpeichern\n\nOpen file\tDatei öffnen\nEmpty\t\n", encoding="utf-8")
    assert parallel.read_parallel_file(tsv) == [
        ("Save", "Speichern"),
        ("Open file", "Datei öffnen"),
    ]
    csv_file = tmp_path / "pairs.csv"
    csv_file.write_text(
        'id,fr,en\n1,"Ouvrir, vite",Open quickly\n2,Fermer,Close\n', encoding="utf-8"
    )
    assert parallel.read_parallel_file(
        csv_file, source_column="en", target_column="fr", skip_header=True
    ) == [("Open quickly", "Ouvrir, vite"), ("Close", "Fermer")]
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text(
        '{"source": "Run", "target": "Ausführen"}\n{"en": 1, "x": 2}\n', encoding="utf-8"
    )
    with pytest.raises(ValueError, match=r"Line 2 of pairs.jsonl has no key 'source' or 'target'"):
        parallel.read_parallel_file(jsonl)
    jsonl.write_text('{"source": "Run", "target": "Ausführen"}\n', encoding="utf-8")
    assert parallel.read_parallel_file(jsonl) == [("Run", "Ausführen")]
    with pytest.raises(
        ValueError, match=r"Row 1 of short.tsv has 1 column\(s\); expected at least 2"
    ):
        (tmp_path / "short.tsv").write_text("only\n")
        parallel.read_parallel_file(tmp_path / "short.tsv")
    with pytest.raises(FileNotFoundError, match=r"path='.*missing.tsv'"):
        parallel.read_parallel_file(tmp_path / "missing.tsv")


def test_normalize_text():
    assert parallel.normalize_text("Save As…") == "saveas"
    assert parallel.normalize_text("&Open  File!") == "openfile"
    assert parallel.normalize_text("保存（S）") == "保存s"


def test_split_held_out_no_leak():
    pairs = {
        "de": [
            ("Save file", "Datei speichern"),
            ("Open file", "Datei öffnen"),
            ("Close", "Schließen"),
            ("Save file…", "Speichern…"),
            ("Quit now", "Beenden"),
        ],
        "fr": [
            ("Save file", "Enregistrer"),
            ("Open file", "Ouvrir"),
            ("Quit now", "Quitter"),
            ("Exit", "Quitter"),
        ],
        "ja": [("save FILE", "保存"), ("Datei speichern", "x"), ("Other", "保存")],
    }
    train, test = parallel.split_held_out(pairs, n_test=1, languages=["de", "fr"], seed=0)
    # Candidates (in both de and fr, >= 4 chars): "Open file", "Quit now", "Save file".
    held = test["de"][0][0]
    assert held in {"Open file", "Quit now", "Save file"} and test["fr"][0][0] == held
    assert list(test) == ["de", "fr"] and set(train) == {"de", "fr", "ja"}
    keys = {parallel.normalize_text(s) for lang in test for pair in test[lang] for s in pair}
    for kept in train.values():
        for en, x in kept:
            assert (
                parallel.normalize_text(en) not in keys and parallel.normalize_text(x) not in keys
            )
    # seed 0 holds out "Save file": its variants leave every language ("Save file…" by
    # normalisation, "save FILE" by case, the ja pair whose English is a held-out translation).
    assert held == "Save file"
    assert train["de"] == [
        ("Open file", "Datei öffnen"),
        ("Close", "Schließen"),
        ("Quit now", "Beenden"),
    ]
    assert train["ja"] == [("Other", "保存")]
    # seed 1 holds out "Quit now": fr "Exit" goes too, its translation is the held-out "Quitter".
    train, test = parallel.split_held_out(pairs, n_test=1, languages=["de", "fr"], seed=1)
    assert test == {"de": [("Quit now", "Beenden")], "fr": [("Quit now", "Quitter")]}
    assert train["fr"] == [("Save file", "Enregistrer"), ("Open file", "Ouvrir")]
    with pytest.raises(ValueError, match=r"`languages` must be keys.*missing \['xx'\]"):
        parallel.split_held_out(pairs, 1, languages=["de", "xx"])
    with pytest.raises(ValueError, match=r"No English string of at least 40 characters"):
        parallel.split_held_out(pairs, 1, languages=["de"], min_chars=40)


def test_similar_batches_groups_rows_by_hyperplane_code():
    import numpy as np

    # Rows 0-3 point one way, rows 4-7 the opposite way: any hyperplane separates them, so with
    # one bit and window 1 every batch of 4 is exactly one of the two groups.
    vectors = np.array([[1.0, 0.2]] * 4 + [[-1.0, -0.2]] * 4)
    for seed in range(5):
        batches = parallel.similar_batches(vectors, 4, bits=1, window=1, rng=np.random.default_rng(seed))
        assert batches.shape == (2, 4)
        assert sorted(map(sorted, batches.tolist())) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    # `rows` indexes per-key vectors: keys 0 and 1 are opposite, rows alternate between them.
    batches = parallel.similar_batches(vectors[[0, 4]], 2, rows=np.array([0, 1, 0, 1]), bits=1, window=1)
    assert sorted(map(sorted, batches.tolist())) == [[0, 2], [1, 3]]
    # window 2: 8 rows dealt into two batches of 4, every row once; 10 rows -> 2 rows left out.
    batches = parallel.similar_batches(np.ones((10, 3)), 4, bits=2, window=2)
    assert batches.shape == (2, 4) and len(set(batches.ravel().tolist())) == 8


def test_similar_batches_errors():
    import numpy as np

    with pytest.raises(ValueError, match="must be a 2-D array"):
        parallel.similar_batches(np.ones(4), 2)
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer. Received: batch_size=0"):
        parallel.similar_batches(np.ones((4, 2)), 0)
    with pytest.raises(ValueError, match="`window` must be a positive integer"):
        parallel.similar_batches(np.ones((4, 2)), 2, window=0)
