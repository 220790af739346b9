"""The pipeline's data step: load a config's data (built-in dataset or `data.source`), split off a
validation set, and encode each model's view (the student's tokenizer / image size; a teacher may
have its own, see `keras_kd.pipeline.teachers`)."""

import dataclasses

import numpy as np

SMOKE_TRAIN, SMOKE_TEST = 64, 32
TEXT_DATASETS = ("chinese_reviews", "rotten_tomatoes", "tweets")


@dataclasses.dataclass
class PreparedData:
    """Raw splits plus the student's encoded view of each. `kind`: text | image | features | parallel.

    `raw[split]` are texts (object arrays), images (`uint8`/float arrays) or feature rows; splits are
    `train`, `val`, `test` and `unlabelled` (possibly empty). `x_<split>` is the student's view.
    For `parallel`, raw rows are `(english, translation)` pairs and `y_*` are empty.
    """

    kind: str
    raw: dict
    y_train: np.ndarray
    y_val: np.ndarray
    y_test: np.ndarray
    class_names: list
    student_encoder: "Encoder"
    x_train: np.ndarray = None
    x_val: np.ndarray = None
    x_test: np.ndarray = None
    x_unlabelled: np.ndarray = None
    data_config: object = None

    def __post_init__(self):
        if self.kind != "parallel":
            for split in ("train", "val", "test", "unlabelled"):
                setattr(self, f"x_{split}", self.student_encoder(self.raw[split]))

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def tokenizer(self):
        return self.student_encoder.tokenizer

    def model_arguments(self, encoder=None):
        """What a builder may take from the data: num_classes, vocabulary_size, sequence_length, input_shape."""
        encoder = encoder or self.student_encoder
        return {"num_classes": self.num_classes if self.class_names else None, **encoder.model_arguments()}


class Encoder:
    """Turns raw examples into a model's inputs: a tokenizer for texts, scaling/resizing for images."""

    def __init__(self, kind, tokenizer=None, image_size=None, input_shape=None):
        self.kind = kind
        self.tokenizer = tokenizer
        self.image_size = image_size
        self._input_shape = input_shape

    def __call__(self, raw, batch_size=2048):
        if self.kind == "text":
            texts = [str(t) for t in raw]
            if not texts:
                return np.zeros((0, self.tokenizer.sequence_length), "int32")
            return np.concatenate([self.tokenizer(texts[i : i + batch_size])["token_ids"].numpy()
                                   for i in range(0, len(texts), batch_size)])
        if self.kind == "image":
            images = np.asarray(raw)
            if images.ndim == 3:  # (n, h, w): add the channel axis
                images = images[..., None]
            scaled = images.astype("float32") / 255.0 if images.dtype == np.uint8 else images.astype("float32")
            if self.image_size is not None and len(scaled) and tuple(scaled.shape[1:3]) != tuple(self.image_size):
                import tensorflow as tf

                scaled = tf.image.resize(scaled, self.image_size).numpy()
            return scaled
        return np.asarray(raw, dtype="float32")

    def signature(self):
        """What determines the encoding (two encoders with equal signatures give equal inputs)."""
        if self.kind == "text":
            return ("text", type(self.tokenizer).__name__, repr(sorted(self.tokenizer.get_config().items())))
        return (self.kind, tuple(self.image_size or ()))

    def model_arguments(self):
        if self.kind == "text":
            return {"vocabulary_size": getattr(self.tokenizer, "vocabulary_size", None),
                    "sequence_length": self.tokenizer.sequence_length}
        return {"input_shape": self._input_shape}


def make_tokenizer(tokenizer, sequence_length, vocabulary_size, vocabulary=None, lowercase=False, key="data"):
    """A student-side tokenizer (`char`, `byte` or `wordpiece`) from `keras_kd.data.text`."""
    from keras_kd.data import text

    kwargs = dict(sequence_length=sequence_length, add_special_tokens=False)
    if tokenizer == "char":
        return text.CharTokenizer(vocabulary_size=vocabulary_size, **kwargs)
    if tokenizer == "byte":
        return text.ByteTokenizer(lowercase=lowercase, **kwargs)
    if vocabulary is None:
        from keras_kd.pipeline.config import ConfigError

        raise ConfigError(f"`{key}.tokenizer: wordpiece` needs `{key}.vocabulary`: the path of a BERT vocab.txt.")
    return text.WordPieceTokenizer(vocabulary, sequence_length=sequence_length)


def make_encoder(kind, data_config, inputs=None, raw_example=None, key="data"):
    """The encoder of one model: `data`'s preprocessing with the model's `inputs` overrides."""
    def pick(name):
        value = getattr(inputs, name, None) if inputs is not None else None
        return getattr(data_config, name) if value is None else value

    if kind == "text":
        return Encoder("text", tokenizer=make_tokenizer(pick("tokenizer"), pick("sequence_length"),
                                                        pick("vocabulary_size"), pick("vocabulary"),
                                                        pick("lowercase"), key=key))
    if kind == "image":
        size = pick("image_size")
        example = np.asarray(raw_example)
        shape = tuple(example.shape[1:]) if example.ndim == 4 else (*example.shape[1:], 1)
        if size is not None:
            shape = (size[0], size[1], shape[-1])
        return Encoder("image", image_size=size, input_shape=shape)
    return Encoder(kind, input_shape=tuple(np.asarray(raw_example).shape[1:]))


def _load_raw(config, smoke):
    """`(kind, (x_train, y_train), (x_test, y_test), class_names, x_unlabelled)` of the config's data."""
    from keras_kd.data import datasets

    data = config.data
    if data.dataset is not None:
        (x_train, y_train), (x_test, y_test) = datasets.load(data.dataset, **data.kwargs)
        kind = "text" if data.dataset in TEXT_DATASETS else "image"
        if kind == "text":
            x_train = np.asarray([str(t) for t in x_train], dtype=object)
            x_test = np.asarray([str(t) for t in x_test], dtype=object)
        class_names = [str(c) for c in datasets.CLASS_NAMES[data.dataset]]
        return kind, (x_train, np.asarray(y_train, "int32")), (x_test, np.asarray(y_test, "int32")), class_names, None
    from keras_kd.data.sources import load_source

    source = data.source.to_dict()
    source.pop("image_size")
    loaded = load_source(**source, image_size=data.source.image_size or data.image_size, seed=config.seed)
    return (loaded.kind, (loaded.x_train, loaded.y_train), (loaded.x_test, loaded.y_test), loaded.class_names,
            loaded.x_unlabelled)


def prepare_data(config, smoke=False, max_test_examples=None):
    """Load, slice and split the data, and encode the student's view. Returns a `PreparedData`."""
    data_config = config.data
    kind, (x_train, y_train), (x_test, y_test), class_names, unlabelled = _load_raw(config, smoke)
    limit_train = SMOKE_TRAIN if smoke else data_config.max_examples
    limit_test = SMOKE_TEST if smoke else (max_test_examples or data_config.max_test_examples)
    x_train, y_train = x_train[:limit_train], y_train[:limit_train]
    x_test, y_test = x_test[:limit_test], y_test[:limit_test]
    if unlabelled is None:
        unlabelled = x_train[:0]
    elif limit_train:
        unlabelled = unlabelled[:limit_train]
    n_val = int(round(len(x_train) * data_config.validation_fraction))
    raw = {"train": x_train[n_val:], "val": x_train[:n_val], "test": x_test, "unlabelled": unlabelled}
    if kind == "parallel":
        return PreparedData(kind, raw, y_train[:0], y_train[:0], y_test[:0], [], make_encoder(
            "text", data_config, config.student.inputs, key="student.inputs"), data_config=data_config)
    encoder = make_encoder(kind, data_config, config.student.inputs, raw_example=x_train[:1], key="student.inputs")
    return PreparedData(kind, raw, y_train[n_val:], y_train[:n_val], y_test, class_names, encoder,
                        data_config=data_config)
