"""`task: embedding`: distil a sentence-embedding teacher into a student on parallel text
(Reimers & Gurevych 2020): the student learns `student(english) ≈ teacher(english)` and
`student(translation) ≈ teacher(english)`; evaluated by translation retrieval (top-k accuracy of
finding each held-out translation's English sentence by cosine similarity)."""

import os
import time

import numpy as np

from keras_kd.pipeline import report as report_lib
from keras_kd.pipeline.common import PipelineResult, build_student, fit_verbose, say
from keras_kd.pipeline.config import ConfigError


def _retrieval(source, target, ks=(1, 5)):
    """`{"retrieval@k": ...}`: top-k accuracy of finding row i of `target` for row i of `source`."""
    from keras_kd.evaluation import translation_retrieval

    scores = translation_retrieval(source, target, ks=ks)
    return {f"retrieval@{k}": scores[f"top{k}"] for k in ks}


def run_embedding(config, data, out_dir, run_dir, smoke, verbose, options, started):
    import keras

    import keras_kd
    from keras_kd.callbacks import DistillationTensorBoard
    from keras_kd.data.cache import with_teacher_outputs
    from keras_kd.pipeline.teachers import load_teacher, outputs_of

    training, distillation = config.training, config.distillation
    teacher = load_teacher(config.teacher, "teacher", data, options, smoke)
    pairs_train, pairs_test = data.raw["train"], data.raw["test"]
    if len(pairs_test) == 0:
        raise ConfigError("`task: embedding` needs held-out pairs: set `data.source.test` or `test_fraction`.")
    english = sorted({str(e) for e in pairs_train[:, 0]} | {str(e) for e in pairs_test[:, 0]})
    index = {e: i for i, e in enumerate(english)}
    key = "embedding" if teacher.kind in ("preset", "transformers") else "logits"

    def teacher_embed(texts):
        view = teacher.encode(texts) if teacher.encode is not None else data.student_encoder(texts)
        return outputs_of(teacher.model, view, key=key, batch_size=64)

    say(f"The teacher embeds {len(english)} English sentences (once)", verbose)
    english_embeddings = teacher_embed(english)
    config._embedding_dim = int(english_embeddings.shape[-1])
    texts = [str(e) for e in pairs_train[:, 0]] + [str(t) for t in pairs_train[:, 1]]
    targets = np.concatenate([english_embeddings[[index[str(e)] for e in pairs_train[:, 0]]]] * 2)
    x = data.student_encoder(texts)
    train_ds = with_teacher_outputs(x, targets, batch_size=training.batch_size, shuffle=True, seed=config.seed)

    keras.utils.set_random_seed(config.seed + 1)
    student = build_student(config, data, options, "student_distilled")
    if tuple(student.output_shape)[-1] != config._embedding_dim:
        raise ConfigError(f"`student` outputs width {student.output_shape[-1]}, the teacher's embedding has "
                          f"{config._embedding_dim}: give the builder `num_classes`/`output_dim` (it receives it).")
    distiller = keras_kd.Distiller(student, teacher=None, distillation_loss=distillation.build_loss(), alpha=1.0)
    distiller.compile(optimizer=training.build_optimizer(), jit_compile=False if smoke else training.jit_compile)
    epochs = 1 if smoke else training.epochs
    say(f"Distilling the embedding into the student ({epochs} epoch(s) over {len(x)} sentences)", verbose)
    history = distiller.fit(train_ds, epochs=epochs, steps_per_epoch=1 if smoke else training.steps_per_epoch,
                            shuffle=False, verbose=fit_verbose(verbose, smoke),
                            callbacks=[DistillationTensorBoard(log_dir=os.path.join(run_dir, "distilled"),
                                                               run_name=config.name, config=config.to_dict())])

    say("Evaluating translation retrieval on held-out pairs, exporting the student", verbose)
    test_english = english_embeddings[[index[str(e)] for e in pairs_test[:, 0]]]
    translations = [str(t) for t in pairs_test[:, 1]]
    student_translation = outputs_of(student, data.student_encoder(translations))
    student_english = outputs_of(student, data.student_encoder([str(e) for e in pairs_test[:, 0]]))
    metrics = {
        "teacher": _retrieval(teacher_embed(translations), test_english),
        "distilled": _retrieval(student_translation, test_english),
        "distilled (student english)": _retrieval(student_translation, student_english),
    }
    paths = {"output_dir": out_dir, "runs_dir": run_dir, "student": os.path.join(out_dir, "student.keras")}
    keras.saving.save_model(student, paths["student"])
    exports = report_lib.export_student(student, out_dir, representative_data=x[:256], preprocessor=data.tokenizer,
                                        saved_model=config.export.saved_model,
                                        tflite_modes=tuple(m for m in config.export.tflite if m != "int8" or not smoke))
    for label, path in exports.items():
        paths["saved_model" if label == "SavedModel" else label.lower().replace(" ", "_")] = path
    elapsed = time.perf_counter() - started
    rows = [{"model": name, **scores} for name, scores in metrics.items()]
    from keras_kd.reports import metrics as metrics_lib

    lines = [f"# keras-kd: {config.name} (embedding distillation)", "",
             f"Translation retrieval on {len(pairs_test)} held-out pairs (translation → English, cosine):", "",
             metrics_lib.comparison_table(rows), "",
             f"- {len(pairs_train)} training pairs, {len(english)} English sentences embedded once by the teacher; "
             f"loss {distillation.loss if isinstance(distillation.loss, str) else distillation.loss.get('name')}; "
             f"student {student.count_params():,} parameters; wall time {elapsed:.0f} s"
             f"{' (smoke run)' if smoke else ''}.",
             "", f"TensorBoard: `tensorboard --logdir {run_dir}`"]
    paths["report"] = os.path.join(out_dir, "report.md")
    with open(paths["report"], "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    del history
    if verbose:
        print("\n" + metrics_lib.comparison_table(rows, fmt="text") + f"\n\nReport: {paths['report']}")
    return PipelineResult(config.name, config.task, metrics, paths, [], elapsed, rows)
