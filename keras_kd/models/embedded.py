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

from keras_kd.data.cache_format import file_sha256

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


def resolve_folder(directory):
    """`directory` (a folder or a file) as given when it exists, else relative to the source tree keras_kd
    was installed from (`make demo` in a clone: `saved_models/demo_teacher` is found from any working
    directory)."""
    if os.path.isabs(directory) or os.path.exists(directory):
        return directory
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    candidate = os.path.join(root, directory)
    return candidate if os.path.exists(candidate) else directory


def load_embedded_teacher(directory, data_sha256=None):
    """Load the teacher of `directory` (safe_mode) after checking its card; returns `(model, card)`.

    A relative `directory` that does not exist is looked up in the source tree (`resolve_folder`).
    """
    import keras

    import keras_kd.models  # noqa: F401  (registers the built-in layers before loading)

    directory = resolve_folder(directory)
    card = read_card(directory)
    check_card(card, directory, data_sha256)
    model = keras.saving.load_model(os.path.join(directory, card["model_file"]), safe_mode=True)
    return model, card


def prepared_data_sha256(data):
    """`split_sha256` of a `keras_kd.pipeline` prepared split: train, validation and test examples
    with their labels, in that order (raw texts, before tokenization)."""
    return split_sha256(data.raw["train"], data.y_train, data.raw["val"], data.y_val, data.raw["test"], data.y_test)


def build_embedded_teacher(config, output, seed=None, verbose=1):
    """Train the teacher of a pipeline config (its `builder`, `kwargs`, `train_epochs`, `learning_rate`)
    on the config's training split and save it with its card in `output`. Returns the card.

    This is the reproducible command behind an embedded teacher:
    `python -m keras_kd.models.embedded --config demo --output saved_models/demo_teacher`.
    """
    import sys

    import keras

    # Not `keras_kd.pipeline` itself: the pipeline imports this module.
    from keras_kd import models
    from keras_kd.pipeline.config import load_config
    from keras_kd.pipeline.data import prepare_data

    bundled = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", f"{config}.yaml")
    path = config if os.path.isfile(str(config)) else bundled
    if not os.path.isfile(path):
        raise FileNotFoundError(f"`config` must be a config file or a bundled config name. Received: config={config!r}")
    run_config = load_config(path)
    # the teacher with `embedded` (the first one when none has it)
    spec = next((t for t in run_config.all_teachers if t.embedded is not None), run_config.all_teachers[0])
    if spec.builder is None or not spec.train_epochs:
        raise ValueError(f"{path}: the embedded teacher is built from `teacher.builder` with `teacher.train_epochs` > 0.")
    seed = run_config.seed if seed is None else seed
    data = prepare_data(run_config)
    keras.utils.set_random_seed(seed)
    builder = models.get_builder(spec.builder)
    model = builder(**{**data.model_arguments(), **spec.kwargs, "name": "teacher"})
    model.compile(keras.optimizers.Adam(spec.learning_rate),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(data.x_train, data.y_train, epochs=spec.train_epochs, batch_size=run_config.training.batch_size,
              validation_data=(data.x_val, data.y_val), verbose=verbose)

    def accuracy(x, y):
        return float(np.mean(np.argmax(model.predict(x, batch_size=1024, verbose=0), -1) == y))

    os.makedirs(output, exist_ok=True)
    model_file = "teacher.keras"
    shipped = builder(**{**data.model_arguments(), **spec.kwargs, "name": "teacher"})  # no optimizer state
    shipped.set_weights(model.get_weights())
    shipped.save(os.path.join(output, model_file))
    command = " ".join(["python -m keras_kd.models.embedded", "--config", str(config), "--output", output,
                        "--seed", str(seed)])
    return write_card(
        output, model_file, data_sha256=prepared_data_sha256(data), command=command,
        accuracy={"test": accuracy(data.x_test, data.y_test), "validation": accuracy(data.x_val, data.y_val)},
        params=int(model.count_params()), builder=spec.builder, kwargs=spec.kwargs, epochs=spec.train_epochs,
        learning_rate=spec.learning_rate, batch_size=run_config.training.batch_size, seed=seed,
        dataset=run_config.data.dataset,
        split={"train": int(len(data.y_train)), "validation": int(len(data.y_val)), "test": int(len(data.y_test))},
        versions={"keras": keras.__version__, "python": sys.version.split()[0]},
    )


def main(argv=None):
    """`python -m keras_kd.models.embedded --config demo --output saved_models/demo_teacher`."""
    import argparse

    parser = argparse.ArgumentParser(description=build_embedded_teacher.__doc__)
    parser.add_argument("--config", default="demo", help="a config file or a bundled config name (default: demo)")
    parser.add_argument("--output", default="saved_models/demo_teacher", help="the teacher's folder")
    parser.add_argument("--seed", type=int, default=None, help="override the config's seed")
    args = parser.parse_args(argv)
    card = build_embedded_teacher(args.config, args.output, seed=args.seed)
    print(json.dumps({k: card[k] for k in ("accuracy", "params", "data_sha256", "model_sha256")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
