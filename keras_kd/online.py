"""The online modes: teacher(s) and student train together (apart from the frozen-teacher path).

- `"mutual"` (Deep Mutual Learning, Zhang et al. 2018): every model trains on
  `alpha · distillation_loss(peers, itself) + (1 - alpha) · student loss on labels`, the peers' logits
  held constant (several peers: the mean of their losses).
- `"teacher_guided"`: the teacher is fine-tuned on the labels alone while the student distills from
  it.

`keras_kd.Distiller(mode=...)` calls `train_step` here instead of its frozen-teacher step. Both need
labels; the teacher has its own optimizer (`make_teacher_optimizer`), and every update goes through
`keras_kd.checks.apply_gradients_checked`, as in the frozen path.
"""

import keras
import tensorflow as tf
from keras import ops

from keras_kd import _keras_compat as compat
from keras_kd import checks


def make_teacher_optimizer(distiller, teacher_optimizer=None):
    """The teacher's optimizer: `teacher_optimizer`, or a copy of the student's optimizer with its
    learning rate times `distiller.teacher_lr_multiplier`; built for the teachers' variables."""
    if teacher_optimizer is not None:
        teacher_optimizer = keras.optimizers.get(teacher_optimizer)
    else:
        config = distiller.optimizer.get_config()
        if not isinstance(config.get("learning_rate"), (int, float)):
            raise ValueError(
                "The optimizer's learning rate is a schedule: pass `compile(teacher_optimizer=...)` "
                f"explicitly for mode={distiller.mode!r}."
            )
        config["learning_rate"] = config["learning_rate"] * distiller.teacher_lr_multiplier
        teacher_optimizer = type(distiller.optimizer).from_config(config)
    if all(model.built for model in distiller.teachers):
        teacher_optimizer.build([v for model in distiller.teachers for v in model.trainable_variables])
    return teacher_optimizer


def teacher_loss(distiller, index, outputs, student_logits, peers, y, sample_weight):
    """Teacher `index`'s loss: labels only (teacher_guided), or labels + its peers (mutual),
    plus the teacher's own regularization losses."""
    logits = outputs["logits"]
    loss = ops.cast(compat.compiled_loss(distiller, y, logits, sample_weight), "float32")
    if distiller.mode == "mutual":
        others = [tf.stop_gradient(student_logits)] + [p["logits"] for j, p in enumerate(peers) if j != index]
        distill = ops.sum(ops.stack([distiller._distill_one(o, logits, y, sample_weight) for o in others])) / len(others)
        alpha = ops.cast(distiller.alpha, "float32")
        loss = alpha * distill + (1.0 - alpha) * loss
    for regularization in distiller.teachers[index].losses:
        loss = loss + ops.cast(compat.additional_loss(distiller, regularization), "float32")
    return loss


def train_step(distiller, data):
    """One step of mode="mutual" / "teacher_guided": student and teacher(s) both update."""
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    if y is None:
        raise ValueError(f"mode={distiller.mode!r} trains the teacher on labels: every batch needs `y`.")
    if getattr(distiller.augmentation, "mixes_examples", False):
        raise ValueError(
            f"mode={distiller.mode!r} trains the teacher on labels, so `augmentation` must not mix examples "
            f"(mixup/cutmix). Received: augmentation={distiller.augmentation!r}"
        )
    x, y = distiller._augment(x, y)
    teacher_variables = [v for model in distiller.teachers for v in model.trainable_variables]
    teacher_ids = {id(v) for v in teacher_variables}
    student_variables = [v for v in distiller.trainable_variables if id(v) not in teacher_ids]
    with tf.GradientTape(persistent=True) as tape:
        student_outputs = distiller._student_outputs(x, training=True)
        per_teacher = distiller._call_teachers(x, training=True)
        peers = [{k: tf.nest.map_structure(tf.stop_gradient, v) for k, v in o.items()} for o in per_teacher]
        terms = distiller.compute_distillation_losses(y, student_outputs, distiller._merge_teacher_outputs(peers), sample_weight)
        student_loss = distiller.optimizer.scale_loss(terms["loss"])
        teacher_losses = [
            teacher_loss(distiller, i, outputs, student_outputs["logits"], peers, y, sample_weight)
            for i, outputs in enumerate(per_teacher)
        ]
        total_teacher_loss = distiller.teacher_optimizer.scale_loss(ops.sum(ops.stack(teacher_losses)))
    gradients = tape.gradient(student_loss, student_variables)
    checks.apply_gradients_checked(distiller, distiller.optimizer, gradients, student_variables, (x, y, sample_weight), peers, terms)
    teacher_gradients = tape.gradient(total_teacher_loss, teacher_variables)
    checks.apply_gradients_checked(
        distiller, distiller.teacher_optimizer, teacher_gradients, teacher_variables, (x, y, sample_weight), peers, terms
    )
    del tape

    student_logits = student_outputs["logits"]
    batch_size = distiller._batch_size(student_logits)
    distiller._update_trackers(terms, batch_size)
    for tracker, value in zip(distiller.teacher_loss_trackers, teacher_losses, strict=True):
        tracker.update_state(compat.unscale_loss_for_distribution(value), sample_weight=batch_size)
    distiller._update_agreement(student_logits, distiller._merge_teacher_outputs(peers)["logits"])
    return distiller.compute_metrics(x, y, student_logits, sample_weight)
