"""`DistillationTensorBoard`: Keras' TensorBoard callback plus the distillation scalars.

Everything `Distiller.fit` logs (`loss`, `student_loss`, `distillation_loss`, each feature loss,
`teacher_agreement`, the student metrics, and their `val_` counterparts) is written by the standard
callback as `epoch_<name>`; this subclass adds, per epoch, the current `temperature` and `alpha`
(read from the Distiller's schedule variables), once at step 0 the teacher's own metrics
(`teacher_<name>`, when given) and a text summary of the run's config.

Open it with `tensorboard --logdir runs`.
"""

import datetime
import json
import os

import keras
import numpy as np


def default_run_name(prefix="kd"):
    """`kd-20261123-181500`: a run name from the current UTC time."""
    return f"{prefix}-{datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%d-%H%M%S')}"


def _config_as_markdown(config):
    if config is None:
        return None
    if isinstance(config, str):
        text = config
    else:
        try:
            import yaml

            text = yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
        except ImportError:  # pragma: no cover - pyyaml is a dependency
            text = json.dumps(config, indent=2, default=str)
    # TensorBoard renders text summaries as Markdown: indent to keep it a code block.
    return "\n".join("    " + line for line in text.splitlines())


class DistillationTensorBoard(keras.callbacks.TensorBoard):
    """TensorBoard logging for `keras_kd.Distiller.fit`.

    Args:
        log_dir: where to write; default `runs/<run_name>` (`train/` and `validation/` inside).
        run_name: the run's name when `log_dir` is not given; default `kd-<UTC timestamp>`.
        config: the run's config (a dict, written as YAML, or a string), shown as text under
            the `config` tag.
        teacher_metrics: the teacher's own figures, e.g. `{"accuracy": 0.84}`, written once at
            step 0 as `teacher_<name>` (the teacher is frozen: they never change).
        write_graph: as in `keras.callbacks.TensorBoard` (default False: the distiller graph is
            rarely useful and slow to write).
        **kwargs: any other `keras.callbacks.TensorBoard` argument (`update_freq`, ...).

    Scalars per epoch (`train/` and `validation/`): `epoch_loss`, `epoch_student_loss`,
    `epoch_distillation_loss`, `epoch_teacher_agreement`, `epoch_<metric>`, one per feature loss,
    and in `train/` `epoch_temperature`, `epoch_alpha` and `epoch_learning_rate`.
    """

    def __init__(self, log_dir=None, run_name=None, config=None, teacher_metrics=None, write_graph=False, **kwargs):
        self.run_name = run_name or default_run_name()
        if log_dir is None:
            log_dir = os.path.join("runs", self.run_name)
        super().__init__(log_dir=log_dir, write_graph=write_graph, **kwargs)
        self.config = config
        self.teacher_metrics = dict(teacher_metrics or {})
        for name, value in self.teacher_metrics.items():
            if not np.isscalar(value):
                raise ValueError(
                    f"`teacher_metrics` values must be scalars. Received: teacher_metrics[{name!r}]={value!r}"
                )

    def _schedule_values(self):
        values = {}
        for name in ("temperature", "alpha"):
            variable = getattr(self.model, name, None)
            if variable is not None and not callable(variable):
                values[name] = float(keras.ops.convert_to_numpy(variable))
        return values

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        with self._train_writer.as_default():
            for name, value in self.teacher_metrics.items():
                self.summary.scalar(f"teacher_{name}", float(value), step=0)
            text = _config_as_markdown(self.config)
            if text is not None:
                self.summary.text("config", text, step=0)
        self._train_writer.flush()

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        logs.update(self._schedule_values())
        super().on_epoch_end(epoch, logs)
