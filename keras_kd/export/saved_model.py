"""Export a distilled student as a TensorFlow SavedModel with a `serving_default` signature.

Only the student leaves: given a `keras_kd.Distiller`, `saved_model` exports `distiller.student`
and nothing of the teacher, the distillation loss or the schedule variables (Keras'
`ExportArchive` saves exactly the variables the serving function reads).

The `serving_default` signature returns

    logits         float32 [batch, classes]   the student's logits
    probabilities  float32 [batch, classes]   softmax(logits)
    labels         int64   [batch]            argmax(logits)
    label_names    string  [batch]            class_names[labels]   (only with `class_names=`)

With `preprocessor=` (a tf-traceable callable or tokenizer object mapping a `tf.string` batch to
the model's inputs) tokenization runs inside the graph and the signature takes raw strings under
the input name `text`; the model's own inputs stay available under the `serve_inputs` endpoint.
The artifact loads with `tf.saved_model.load` and serves without keras or keras-kd installed
(import `tensorflow_text` first when the preprocessor uses its ops).
"""

import os
import shutil

import keras
import tensorflow as tf

from keras_kd import _keras_compat as compat
from keras_kd.teachers.base import as_output_dict

SERVING_SIGNATURE = "serving_default"
INPUTS_ENDPOINT = "serve_inputs"
TEXT_INPUT = "text"


def student_model(model):
    """The model to export: `model.student` for a `keras_kd.Distiller`, else `model` itself.

    Raises `TypeError` for anything that is not a `keras.Model` and `ValueError` for an unbuilt one.
    """
    from keras_kd.distiller import Distiller

    if isinstance(model, Distiller):
        model = model.student
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a keras.Model (the student) or a keras_kd.Distiller. "
            f"Received: model={model!r} of type {type(model).__name__}"
        )
    if not model.built:
        raise ValueError(
            f"`model` must be built before export: call it on a batch or give it a keras.Input. "
            f"Received: model={model.name!r} (not built)"
        )
    return model


def input_signature(model, signature=None):
    """The model's inputs as a `tf.TensorSpec` (or a dict/list of them), with a dynamic batch axis.

    `signature` overrides the inferred one (a `tf.TensorSpec`, `keras.InputSpec`, `keras.Input`
    or a structure of them); specs without a name are named after their position or dict key.
    """
    if signature is None:
        signature = compat.input_signature(model)
        if isinstance(signature, (list, tuple)) and len(signature) == 1:
            signature = signature[0]
    specs = tf.nest.map_structure(lambda x: compat.tensor_spec(x, dynamic_batch=True), signature)
    if isinstance(specs, dict):
        return {key: tf.TensorSpec(spec.shape, spec.dtype, name=key) for key, spec in specs.items()}
    if isinstance(specs, (list, tuple)):
        return [
            tf.TensorSpec(s.shape, s.dtype, name=s.name or f"input_{i}")
            for i, s in enumerate(specs)
        ]
    return tf.TensorSpec(specs.shape, specs.dtype, name=specs.name or "inputs")


def model_inputs(features, specs):
    """A preprocessor's output shaped like the model's inputs.

    A dict of features (what tokenizers return: `token_ids`, `padding_mask`, ...) is matched to the
    model's inputs by name and extra keys are dropped; anything else is passed through.
    """
    if not isinstance(features, dict):
        return features
    names = (
        list(specs) if isinstance(specs, dict) else [spec.name for spec in tf.nest.flatten(specs)]
    )
    missing = [name for name in names if name not in features]
    if missing and not (len(names) == 1 and len(features) == 1):
        raise ValueError(
            f"The preprocessor's outputs must include the model inputs {names}. Received keys: {sorted(features)}"
        )
    if missing:  # one input, one feature: names need not agree
        return next(iter(features.values()))
    if isinstance(specs, dict):
        return {name: features[name] for name in names}
    return [features[name] for name in names] if isinstance(specs, list) else features[names[0]]


def student_logits(model, inputs):
    """The student's logits for `inputs` (`training=False`), as float32."""
    return tf.cast(as_output_dict(model(inputs, training=False))["logits"], tf.float32)


def serving_outputs(logits, class_names=None):
    """The signature's output dict for a batch of logits (see the module docstring)."""
    labels = tf.argmax(logits, axis=-1, output_type=tf.int64)
    outputs = {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1), "labels": labels}
    if class_names is not None:
        outputs["label_names"] = tf.gather(tf.constant(list(class_names), dtype=tf.string), labels)
    return outputs


def dummy_inputs(specs):
    """Zeros shaped like `specs` (batch 1, unknown lengths 1), structured like the model's inputs."""

    def zeros(spec):
        shape = [1] + [1 if dim is None else dim for dim in spec.shape[1:]]
        if spec.dtype == tf.string:
            return tf.constant("", shape=shape)
        return tf.zeros(shape, spec.dtype)

    return tf.nest.map_structure(zeros, specs)


def num_classes(model, specs):
    """The size of the logits' class axis: static when known, else from one call on zeros."""
    functional = compat.functional_graph(model)
    if functional is not None:
        try:
            dim = as_output_dict(functional.output)["logits"].shape[-1]
        except (AttributeError, ValueError, KeyError):
            dim = None
        if dim is not None:
            return int(dim)
    try:
        return int(student_logits(model, dummy_inputs(specs)).shape[-1])
    except Exception:  # a model that cannot run on zeros: nothing to compare with
        return None


def _check_class_names(class_names, model, specs):
    if class_names is None:
        return None
    if isinstance(class_names, (str, bytes)) or not hasattr(class_names, "__len__"):
        raise TypeError(
            f"`class_names` must be a list of names, one per class. Received: class_names={class_names!r}"
        )
    class_names = [str(name) for name in class_names]
    classes = num_classes(model, specs)
    if classes is not None and len(class_names) != classes:
        raise ValueError(
            f"`class_names` must have one name per class ({classes}). "
            f"Received: class_names={class_names} ({len(class_names)} names)"
        )
    return class_names


def prepare_folder(path, overwrite):
    """Refuse a non-empty export folder (stale files would mix with the new export) unless `overwrite`.

    With `overwrite=True` the folder is deleted first. A file at `path` is refused.
    """
    path = os.fspath(path)
    if os.path.isfile(path):
        raise FileExistsError(
            f"`path` must be a folder for the SavedModel, but {path!r} is a file."
        )
    if os.path.isdir(path) and os.listdir(path):
        if not overwrite:
            raise FileExistsError(
                f"The export folder {path!r} is not empty ({len(os.listdir(path))} entries): files of an "
                "earlier export would be kept next to the new one. Pass `overwrite=True` to replace it, "
                "or choose an empty folder."
            )
        shutil.rmtree(path)
    return path


def _positional(specs):
    """`tf.function` input signatures are a list of positional arguments."""
    return list(specs) if isinstance(specs, list) else [specs]


def _trackables(preprocessor):
    """The TF objects (tables, variables) a preprocessor holds: itself if trackable, else its attributes.

    A bound method (`tokenizer.tokenize`) stands for its object.
    """
    if preprocessor is None:
        return []
    owner = getattr(preprocessor, "__self__", preprocessor)
    if isinstance(owner, tf.__internal__.tracking.Trackable):
        return [owner]
    attributes = vars(owner).values() if hasattr(owner, "__dict__") else ()
    return [value for value in attributes if isinstance(value, tf.__internal__.tracking.Trackable)]


def build_archive(model, endpoints, also_track=()):
    """A `keras.export.ExportArchive` tracking `model` with endpoints `{name: (fn, input_signature)}`.

    The first endpoint is also the SavedModel's `serving_default` signature. `also_track` lists
    more trackables (a tokenizer) whose lookup tables and variables must be saved with the graph.
    """
    archive = keras.export.ExportArchive()
    for resource in (model, *also_track):
        archive.track(resource)
    # Keras lists its own `Variable` wrappers here, which the checkpoint would store a second time
    # next to the tf.Variables the endpoints read: list the tf.Variables, so each is written once.
    compat.replace_archive_variables(
        archive, lambda tracked: [getattr(v, "value", v) for v in tracked]
    )
    for name, (fn, signature) in endpoints.items():
        archive.add_endpoint(name, fn, input_signature=signature)
    return archive


def saved_model(
    model,
    path,
    *,
    signature=None,
    preprocessor=None,
    class_names=None,
    text_input_name=TEXT_INPUT,
    overwrite=False,
    verbose=False,
):
    """Write the student as a SavedModel at `path` whose `serving_default` returns logits, probabilities, labels.

    Args:
        model: the student `keras.Model`, or a `keras_kd.Distiller` (only its `.student` is written).
        path: the SavedModel directory to write.
        signature: optional input signature (a `tf.TensorSpec` or structure of them) for models whose
            inputs cannot be inferred (subclassed models); defaults to the model's inputs with a
            dynamic batch axis.
        preprocessor: optional tf-traceable callable or tokenizer object (a `keras.layers.Layer`,
            `tf.Module` or function) mapping a 1-D `tf.string` batch to the model's inputs (a dict
            may hold extra keys, which are dropped). Its lookup tables and variables (those of the
            object, or its TF attributes when it is a plain Python object) are tracked and saved. The signature then takes raw strings, e.g. `keras_kd.data.text.WordPieceTokenizer`.
        class_names: optional list of class names; adds the `label_names` output.
        text_input_name: the signature's input name for raw strings (with `preprocessor`).
        overwrite: replace a non-empty folder at `path` (default: refuse it, so no stale file of an
            earlier export is kept next to the new one).
        verbose: print the endpoints Keras wrote.

    Returns:
        `path`, as a string. Load with `tf.saved_model.load(path).signatures["serving_default"]`.
    """
    student = student_model(model)
    specs = input_signature(student, signature)
    class_names = _check_class_names(class_names, student, specs)
    if not overwrite:
        prepare_folder(path, overwrite=False)  # refuse before the (slow) trace

    def serve_inputs(*args):
        return serving_outputs(
            student_logits(student, list(args) if isinstance(specs, list) else args[0]), class_names
        )

    endpoints = {}
    if preprocessor is not None:
        if not callable(preprocessor):
            raise TypeError(
                "`preprocessor` must be callable on a tf.string batch (a tokenizer, layer or function). "
                f"Received: preprocessor={preprocessor!r}"
            )

        def serve_text(text):
            return serving_outputs(
                student_logits(student, model_inputs(preprocessor(text), specs)), class_names
            )

        endpoints[SERVING_SIGNATURE] = (
            serve_text,
            [tf.TensorSpec([None], tf.string, name=text_input_name)],
        )
    endpoints[INPUTS_ENDPOINT] = (serve_inputs, _positional(specs))
    archive = build_archive(student, endpoints, also_track=_trackables(preprocessor))
    archive.write_out(prepare_folder(path, overwrite), verbose=verbose)
    return str(path)
