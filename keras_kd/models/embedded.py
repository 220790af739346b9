"""Embedded default teachers: a trained `.keras` teacher shipped in `saved_models/` with its card.

A teacher that is expensive or slow to train can be trained once, by a documented command, and
shipped next to the code. Its card (`card.json` beside the model) records what is needed to trust
it: the accuracy it reached, the exact command that rebuilds it, the SHA-256 of the model file and
the SHA-256 of the data split it was trained on. Before a run uses the teacher,
`load_embedded_teacher` checks both hashes, so a teacher trained on other data (a different split,
seed or corpus version — whose "test" reviews it may have seen) is refused instead of silently
inflating the results.

```python
from keras_kd.models import embedded

digest = embedded.split_sha256(train_texts, train_labels, test_texts, test_labels)
teacher = embedded.load_embedded_teacher("saved_models/demo_teacher", data_sha256=digest)
```
"""

import hashlib
import json
import os

import numpy as np

CARD_NAME = "card.json"


def split_sha256(*columns):
    """SHA-256 (hex) of a data split given as columns (texts, labels, ...), in order.

    Each column is hashed as its length (8 bytes, little endian) followed by its items: a `str` as
    its UTF-8 bytes plus a 0x1F separator, a number as its decimal text plus 0x1F. So the same
    texts and labels in the same order give the same digest on every machine, and moving one
    review from train to test changes it.
    """
    digest = hashlib.sha256()
    for column in columns:
        items = column.tolist() if isinstance(column, np.ndarray) else list(column)
        digest.update(len(items).to_bytes(8, "little"))
        for item in items:
            if isinstance(item, bytes):
                item = item.decode("utf-8")
            elif isinstance(item, (np.integer, np.floating)):
                item = item.item()
            digest.update(str(item).encode("utf-8") + b"\x1f")
    return digest.hexdigest()


def file_sha256(path):
    """SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_card(directory, model_file, *, data_sha256, command, accuracy, **fields):
    """Write `card.json` for the teacher `directory/model_file`; returns the card (a dict).

    Args:
        directory: the teacher's folder (holds `model_file`).
        model_file: the `.keras` file name inside `directory`.
        data_sha256: `split_sha256(...)` of the split the teacher was trained on.
        command: the command that rebuilds this teacher.
        accuracy: dict of measured accuracies (e.g. `{"test": 0.858, "validation": 0.856}`).
        **fields: anything else worth recording (parameters, builder, epochs, dataset, ...).
    """
    path = os.path.join(directory, model_file)
    card = {
        "model_file": model_file,
        "model_sha256": file_sha256(path),
        "data_sha256": data_sha256,
        "command": command,
        "accuracy": accuracy,
        **fields,
    }
    with open(os.path.join(directory, CARD_NAME), "w", encoding="utf-8") as handle:
        json.dump(card, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
    return card


def read_card(directory):
    """The card (dict) of the embedded teacher in `directory`; a clear error when there is none."""
    path = os.path.join(directory, CARD_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"No embedded teacher card at {path}. Train the teacher first (see the command in the "
            "docs of the run you started, e.g. `keras-kd demo --train-teacher`)."
        )
    with open(path, encoding="utf-8") as handle:
        card = json.load(handle)
    missing = [key for key in ("model_file", "model_sha256", "data_sha256", "command") if key not in card]
    if missing:
        raise ValueError(f"The teacher card {path} lacks {', '.join(missing)}.")
    return card


def check_card(card, directory, data_sha256=None):
    """Raise a `ValueError` unless the model file and (when given) the data split match the card."""
    path = os.path.join(directory, card["model_file"])
    if not os.path.isfile(path):
        raise FileNotFoundError(f"The teacher card names {card['model_file']}, which is not in {directory}.")
    actual = file_sha256(path)
    if actual != card["model_sha256"]:
        raise ValueError(
            f"{path} has SHA-256 {actual}, its card says {card['model_sha256']}: the file changed. "
            f"Rebuild it with: {card['command']}"
        )
    if data_sha256 is not None and data_sha256 != card["data_sha256"]:
        raise ValueError(
            f"The embedded teacher in {directory} was trained on another data split (card data_sha256="
            f"{card['data_sha256']}, this run's split {data_sha256}); it may have seen this run's test "
            f"examples. Rebuild it for this split with: {card['command']}"
        )


def load_embedded_teacher(directory, data_sha256=None):
    """Load the teacher of `directory` (safe_mode) after checking its card; returns `(model, card)`."""
    import keras

    import keras_kd.models  # noqa: F401  (registers the built-in layers before loading)

    card = read_card(directory)
    check_card(card, directory, data_sha256)
    model = keras.saving.load_model(os.path.join(directory, card["model_file"]), safe_mode=True)
    return model, card
