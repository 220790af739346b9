"""What the pipeline's steps share: the result type, progress lines, the student builder."""

import dataclasses

from keras_kd.pipeline.teachers import build_from_builder, load_model_file


@dataclasses.dataclass
class PipelineResult:
    """What a run produced: `metrics[role]` (role: teacher, scratch, distilled; for `task: embedding`
    retrieval scores) and `paths` (output_dir, runs_dir, report, student, saved_model, tflite files)."""

    name: str
    task: str
    metrics: dict
    paths: dict
    class_names: list
    elapsed: float
    rows: list = dataclasses.field(default_factory=list)

    def to_dict(self):
        return dataclasses.asdict(self)


def say(message, verbose):
    if verbose:
        print(f"\n== {message}", flush=True)


def fit_verbose(verbose, smoke):
    if not verbose:
        return 0
    return 2 if smoke or verbose == 2 else "auto"


def build_student(config, data, options, name):
    import keras

    spec = config.student
    if spec.path is not None:
        model = load_model_file(spec.path, "student")
        model = keras.models.clone_model(model)  # fresh weights, same architecture
        model.name = name
        return model
    arguments = {"num_classes": data.num_classes or None, **data.student_encoder.model_arguments()}
    if config.task == "embedding":  # the output width is the teacher's embedding width
        arguments.update(num_classes=config._embedding_dim, output_dim=config._embedding_dim)
    return build_from_builder(spec, "student", arguments, options, name=name)
