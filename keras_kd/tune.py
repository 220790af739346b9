"""Search the temperature, alpha and distillation loss on cached teacher outputs (KerasTuner).

Every trial trains a fresh student with `Distiller(student, teacher=None)` on a dataset that
already carries the teacher's outputs (`keras_kd.data.cache_teacher_outputs`, possibly with K
augmented views): a 16-trial search costs about 16 student trainings and **zero** extra teacher
passes. The trials share one compiled `Distiller` (two when some searched losses have no
temperature): fresh student weights and optimizer state per trial, and the trial's loss (a
`LossSwitch` index), T and alpha assigned to its variables, so the train step is traced once per
search, not once per trial (and, as the pooled trials keep the session that KerasTuner clears before
each trial, its instantiated graph is reused too). With `save_weights="best"` only a trial that
ends as the best so far writes its weights, once, not every trial after every improving epoch. The
search space is `temperatures × alphas × losses` (losses without a temperature, e.g.
`"mse_logits"`, ignore it); the objective is the student's validation metric.

```python
from keras_kd import tune

result = tune.search(build_student, cached_train, validation_data=(x_val, y_val), max_trials=16,
                     epochs=5, log_dir="runs/tune")   # log_dir: TensorBoard's HParams dashboard
print(result.to_markdown())
distiller_kwargs = result.best_distiller_kwargs()     # {"distillation_loss": ..., "alpha": ...}
```

Needs `pip install "keras-kd[tune]"` (KerasTuner).
"""

import dataclasses
import gc
import os
import tempfile
import time

import keras
import numpy as np

from keras_kd import defaults
from keras_kd import losses as kd_losses
from keras_kd import outputs as schema
from keras_kd.data import keys

#: Default search space (the defaults' neighbourhood; see docs/guides/augmentation-and-tuning.md).
TEMPERATURES = (1.0, 2.0, 4.0)
ALPHAS = (0.5, 0.7, 0.9, 1.0)
LOSSES = ("kl", "dist", "js")
TUNERS = ("random", "grid", "bayesian")
#: Batch size of the per-epoch validation pass over arrays (Keras' `fit` default is 32).
VALIDATION_BATCH_SIZE = 512
#: `search(save_weights=...)`: which trials' best-epoch weights are written to the trials' folder.
SAVE_WEIGHTS = ("best", "all")


def _keras_tuner():
    try:
        import keras_tuner
    except ImportError as error:
        raise ImportError(
            'keras_kd.tune needs KerasTuner: pip install "keras-kd[tune]" (or pip install keras-tuner).'
        ) from error
    return keras_tuner


def make_loss(name, temperature):
    """The registered loss `name`, at `temperature` when it has one."""
    loss = kd_losses.get(name)
    if getattr(loss, "temperature", None) is None:
        return loss
    return kd_losses.get(name, temperature=float(temperature))


def _has_temperature(name):
    return getattr(kd_losses.get(name), "temperature", None) is not None


class LossSwitch:
    """Several registered distillation losses behind one traced step; a variable selects one.

    `tune.search` gives each of its pooled Distillers one `LossSwitch` over the searched losses
    (those with a temperature in one, those without in another, so that the Distiller holds the
    same variables as one built with the selected loss). The compiled step runs
    `keras.ops.switch(index, ...)`: only the selected loss is computed, with the values and
    gradients of that loss alone, and `select(name, temperature)` changes the loss between trials
    without retracing. The losses with a temperature share one temperature variable,
    `temperature_variable`, which `Distiller` exposes as `distiller.temperature`.

    Args:
        names: registered loss names, all with a temperature or all without.
        temperature: the initial temperature (ignored by losses without one).
    """

    def __init__(self, names, temperature=defaults.DEFAULT_TEMPERATURE):
        self.names = tuple(names)
        if not self.names:
            raise ValueError(f"`names` must hold at least one loss name. Received: names={names!r}")
        self.losses = [make_loss(name, temperature) for name in self.names]
        tempered = {getattr(loss, "temperature", None) is not None for loss in self.losses}
        if len(tempered) != 1:
            raise ValueError(
                "A LossSwitch holds losses that all have a temperature or all have none (a Distiller's variables "
                f"depend on it). Received: names={self.names}"
            )
        if tempered.pop():
            self.temperature_variable = self.losses[0].temperature_variable
            for loss in self.losses[1:]:
                loss.share_temperature(self.temperature_variable)  # one variable, read by every loss
        self.needs_labels = any(getattr(loss, "needs_labels", False) for loss in self.losses)
        self.index = keras.Variable(0, dtype="int32", trainable=False, name="loss_index")

    def select(self, name, temperature=None):
        """Make `name` the loss that the step computes (and set the temperature, if it has one)."""
        if name not in self.names:
            raise ValueError(f"Unknown loss {name!r} for this LossSwitch. Valid names: {self.names}")
        self.index.assign(self.names.index(name))
        if temperature is not None and hasattr(self, "temperature_variable"):
            self.temperature_variable.assign(temperature)

    @property
    def selected(self):
        """The name of the loss the step computes."""
        return self.names[int(keras.ops.convert_to_numpy(self.index))]

    def __call__(self, y_true, y_pred, sample_weight=None):
        def branch(loss):
            def value():
                target = y_true
                if self.needs_labels and not getattr(loss, "needs_labels", False):
                    target = y_true[schema.LOGITS]  # the Distiller passed {"logits", "labels"} for the others
                return keras.ops.cast(loss(target, y_pred, sample_weight=sample_weight), "float32")

            return value

        return keras.ops.switch(self.index, [branch(loss) for loss in self.losses])


def _check_space(values, name, check):
    values = tuple(values)
    if not values:
        raise ValueError(f"`{name}` must hold at least one value. Received: {name}={values}")
    for value in values:
        check(value)
    return values


def _check_cached(train_data):
    """Refuse training data without cached teacher outputs: a trial must never call a teacher."""
    import tensorflow as tf

    if not isinstance(train_data, tf.data.Dataset):
        raise TypeError(
            "`train_data` must be a tf.data.Dataset carrying cached teacher outputs "
            "(see keras_kd.data.cache_teacher_outputs). "
            f"Received: train_data of type {type(train_data).__name__}"
        )
    spec = train_data.element_spec
    x = spec[0] if isinstance(spec, tuple) else spec
    if not (isinstance(x, dict) and keys.TEACHER_OUTPUTS in x):
        raise ValueError(
            f"`train_data` must carry cached teacher outputs under x[{keys.TEACHER_OUTPUTS!r}] so that trials "
            "never run the teacher: build it with keras_kd.data.cache_teacher_outputs(teacher, dataset, ...). "
            f"Received an element spec without them: {spec}"
        )


@dataclasses.dataclass
class TuneResult:
    """What `search` found: one row per trial (best first) and the KerasTuner tuner."""

    rows: list
    objective: str
    tuner: object = None
    seconds: float = 0.0

    @property
    def best(self):
        """The best trial's row: `{"trial", "loss", "temperature", "alpha", <objective>, "seconds"}`."""
        return self.rows[0]

    def best_distiller_kwargs(self):
        """`Distiller` keyword arguments of the best trial."""
        best = self.best
        return {"distillation_loss": make_loss(best["loss"], best["temperature"]), "alpha": best["alpha"]}

    def to_markdown(self):
        """The trials as a Markdown table, best first."""
        header = f"| trial | loss | temperature | alpha | {self.objective} | seconds |\n|---|---|---:|---:|---:|---:|"
        lines = [
            f"| {r['trial']} | `{r['loss']}` | {r['temperature']:g} | {r['alpha']:g} | "
            f"{r[self.objective]:.4f} | {r['seconds']:.1f} |"
            for r in self.rows
        ]
        return "\n".join([header, *lines])


class _BestEpochInMemory(keras.callbacks.Callback):
    """KerasTuner's `SaveBestEpoch`, keeping the best epoch's weights in memory instead of on disk.

    KerasTuner writes a trial's weights to its checkpoint file after every epoch that improves the
    objective. `search(save_weights="best")` puts this callback in its place: the weights of the
    best epoch are copied (`get_weights()`), and `DistillationHyperModel.fit` writes them to the same
    file at the end of the trial only when the trial is the best one so far (or ties it).
    """

    def __init__(self, objective, filepath):
        super().__init__()
        self.objective = objective
        self.filepath = filepath
        self.best_value = None
        self.weights = None

    def on_epoch_end(self, epoch, logs=None):
        if not self.objective.has_value(logs):  # as SaveBestEpoch: keep every epoch (the last one)
            self.weights = self.model.get_weights()
            return
        value = self.objective.get_value(logs)
        if self.best_value is None or self.objective.better_than(value, self.best_value):
            self.best_value = value
            self.weights = self.model.get_weights()


def _hypermodel(
    kt, build_student, temperatures, alphas, losses, optimizer, learning_rate, metrics, jit_compile, steps_per_execution
):
    from keras_kd.distiller import Distiller

    class DistillationHyperModel(kt.HyperModel):
        """One Distiller per trial; `fit` times each trial (trials run in order).

        During `search` (`reuse = True`), all trials whose loss has a temperature share ONE compiled
        Distiller, and all trials whose loss has none another. Its distillation loss is a
        `LossSwitch` over the searched losses; per trial its student gets the weights of a freshly
        built student (`build_student()`), its optimizer the state it had before any step, and the
        loss index, `alpha` and the temperature are assigned to variables that the traced step
        reads. So the train and test steps are traced at most twice per search, not once per trial
        (tracing is most of a short trial's cost); each trial still starts from a fresh student and
        a fresh optimizer, and computes only its own loss.
        """

        fit_seconds = []
        reuse = False
        save_weights = "all"  # `search(save_weights=...)`
        refreeze = False  # gc.freeze() the survivors of KerasTuner's per-trial collection (see `search`)

        def __init__(self):
            super().__init__()
            self._pool = {}  # has a temperature -> (distiller, optimizer variables' initial values)
            self.best_kept = None  # the best objective value among the trials whose weights were written
            self.saved_trials = set()  # ids of the trials whose weights were written (save_weights="best")
            self.trial_id = None  # the running trial (set by the tuner's run_trial)

        def fit(self, hp, model, *args, **kwargs):
            keeper = None
            if self.save_weights == "best":
                callbacks = kwargs.get("callbacks") or []
                for index, callback in enumerate(callbacks):
                    if type(callback).__name__ == "SaveBestEpoch":  # added by KerasTuner's run_trial
                        keeper = _BestEpochInMemory(callback.objective, callback.filepath)
                        kwargs["callbacks"] = [*callbacks[:index], keeper, *callbacks[index + 1:]]
                        break
            start = time.perf_counter()
            history = model.fit(*args, **kwargs)
            self.fit_seconds.append(time.perf_counter() - start)
            if keeper is not None and keeper.weights is not None:
                self._keep(model, keeper)
            if any(model is pooled for pooled, _ in self._pool.values()):
                # This fit ran `keras_kd.validation`'s first-batch checks; the later trials of this
                # Distiller get the same data and the same student architecture. The in-graph step
                # checks still run in every step.
                model.check_first_batch = False
            return history

        def _keep(self, model, keeper):
            """Write the trial's best epoch to its checkpoint file if no earlier trial was better."""
            value = keeper.best_value
            if value is not None and self.best_kept is not None and keeper.objective.better_than(self.best_kept, value):
                return  # an earlier trial is better: get_best_models() never loads this one
            if value is not None:
                self.best_kept = value
            model.set_weights(keeper.weights)  # the model is rebuilt or re-initialized for the next trial
            model.save_weights(keeper.filepath)
            self.saved_trials.add(self.trial_id)

        def _new_optimizer(self):
            opt = keras.optimizers.get(optimizer) if isinstance(optimizer, str) else optimizer.__class__.from_config(
                optimizer.get_config()
            )
            if learning_rate is not None:
                opt.learning_rate = learning_rate
            return opt

        def _compiled(self, student, loss, alpha):
            distiller = Distiller(student=student, teacher=None, distillation_loss=loss, alpha=alpha)
            distiller.compile(optimizer=self._new_optimizer(), metrics=list(metrics), jit_compile=jit_compile,
                              steps_per_execution=steps_per_execution)
            return distiller

        def build(self, hp):
            if self.refreeze:
                # KerasTuner collected just before this call (`Tuner._try_build`): freeze the survivors
                # too, so the next trial's full collections walk only the objects of one trial.
                gc.freeze()
            temperature = hp.Choice("temperature", list(temperatures))
            alpha = hp.Choice("alpha", list(alphas))
            loss_name = hp.Choice("loss", list(losses))
            student = build_student()
            if not self.reuse:
                return self._compiled(student, make_loss(loss_name, temperature), alpha)
            group = _has_temperature(loss_name)
            pooled = self._pool.get(group)
            if pooled is not None and _same_weights(pooled[0].student, student):
                distiller, initial = pooled
                distiller.student.set_weights(student.get_weights())  # a fresh initialization
                for variable, value in zip(distiller.optimizer.variables, initial, strict=True):
                    variable.assign(value)  # a fresh optimizer: step 0, zero moments
            else:
                switch = LossSwitch([name for name in losses if _has_temperature(name) == group], temperature)
                distiller = self._compiled(student, switch, alpha)
                if distiller.student.built:
                    distiller.optimizer.build(distiller.trainable_variables)
                    self._pool[group] = (distiller, [v.numpy() for v in distiller.optimizer.variables])
            distiller.distillation_loss.select(loss_name, temperature)
            distiller.alpha.assign(alpha)
            return distiller

        def clear(self):
            self.reuse = False
            self.refreeze = False
            self._pool = {}

    return DistillationHyperModel()


def _tuner_class(kt, name, hypermodel):
    """KerasTuner's tuner `name`, telling `hypermodel` which trial runs and naming unsaved trials; it keeps
    the session (and so the pooled Distillers' instantiated functions) between pooled trials."""
    base = {"random": kt.RandomSearch, "grid": kt.GridSearch, "bayesian": kt.BayesianOptimization}[name]

    class Tuner(base):
        def _try_build(self, hp):
            if not hypermodel.reuse:
                return super()._try_build(hp)
            # KerasTuner's `_try_build` calls `keras.backend.clear_session()` and `gc.collect()` before
            # every build. Clearing the session drops TensorFlow's kernel cache, so the pooled
            # Distillers' traced train and test functions are instantiated and optimized again in
            # every trial (about 0.8 s CPU per trial on the tuning benchmark, more than the trial's 80
            # training steps). The pooled Distillers outlive the trials anyway: collect only.
            gc.collect()
            return self.hypermodel.build(hp)

        def run_trial(self, trial, *args, **kwargs):
            hypermodel.trial_id = trial.trial_id
            return super().run_trial(trial, *args, **kwargs)

        def load_model(self, trial):
            if hypermodel.save_weights == "best" and trial.trial_id not in hypermodel.saved_trials:
                raise ValueError(
                    f"The weights of trial {trial.trial_id} were not saved: `tune.search(save_weights=\"best\")` "
                    "writes only those of the trials that were the best so far when they ended, so "
                    "`get_best_models(num_models=1)` works. Pass `save_weights=\"all\"` to keep every trial's."
                )
            return super().load_model(trial)

    Tuner.__name__ = Tuner.__qualname__ = base.__name__
    return Tuner


def _validation_dataset(validation_data, batch_size):
    """Validation arrays `(x, y[, sample_weight])` as a batched, in-memory `tf.data.Dataset`, built once.

    `fit` otherwise converts the arrays again for every validation pass (every epoch of every trial);
    the batches, their order and so the scores are the same. Anything else (a dataset, a generator,
    arrays with `batch_size=None`) is returned unchanged.
    """
    import tensorflow as tf

    if batch_size is None or not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        return validation_data
    leaves = tf.nest.flatten(tuple(validation_data))
    if not leaves or not all(isinstance(leaf, (np.ndarray, tf.Tensor)) for leaf in leaves):
        return validation_data
    return tf.data.Dataset.from_tensor_slices(tuple(validation_data)).batch(batch_size).cache()


def _same_weights(model, other):
    """Whether two models hold weights of the same shapes and dtypes, in the same order."""
    mine, theirs = model.weights, other.weights
    return len(mine) == len(theirs) and all(
        tuple(a.shape) == tuple(b.shape) and a.dtype == b.dtype for a, b in zip(mine, theirs, strict=True)
    )


def search(
    build_student,
    train_data,
    validation_data,
    *,
    temperatures=TEMPERATURES,
    alphas=ALPHAS,
    losses=LOSSES,
    max_trials=16,
    epochs=5,
    validation_batch_size=VALIDATION_BATCH_SIZE,
    tuner="random",
    objective="val_accuracy",
    optimizer="adam",
    learning_rate=None,
    metrics=("accuracy",),
    seed=None,
    directory=None,
    project_name="keras_kd_tune",
    log_dir=None,
    jit_compile="auto",
    steps_per_execution=1,
    reuse_compiled=True,
    save_weights="best",
    verbose=0,
):
    """Search T, alpha and the distillation loss; each trial trains a student on cached outputs.

    Args:
        build_student: a function `() -> keras.Model` returning a FRESH student (logits) per call.
        train_data: a `tf.data.Dataset` from `cache_teacher_outputs` (it must carry the teacher's
            outputs: trials never run a teacher).
        validation_data: what `fit(validation_data=...)` takes, with labels: `(x, y)` or a dataset.
        temperatures, alphas, losses: the search space (registered loss names).
        max_trials: number of trials (the grid has `len(temperatures) · len(alphas) · len(losses)`).
        epochs: student epochs per trial.
        validation_batch_size: the batch size in which `validation_data` arrays are scored after
            every epoch (ignored for a dataset, which is already batched; `None`: Keras' default).
            Scores do not depend on it beyond float rounding; a large batch costs far less than
            Keras' default of 32 on a validation split of thousands of examples. The arrays are
            batched into an in-memory dataset once per search, not once per validation pass.
        tuner: `"random"`, `"grid"` or `"bayesian"` (KerasTuner's RandomSearch, GridSearch,
            BayesianOptimization).
        objective: the validation metric to maximize (`"val_accuracy"`).
        optimizer, learning_rate, metrics, jit_compile, steps_per_execution: for each trial's
            `compile` (`steps_per_execution > 1` runs that many steps per call of the traced function:
            less Python work per step; the step checks still refuse a bad batch's update).
        seed: the tuner's seed (which trials are drawn).
        directory, project_name: where KerasTuner keeps its trials (default: a temporary folder).
        log_dir: a TensorBoard log folder; each trial is logged with its hyperparameters, so
            TensorBoard's HParams dashboard compares them.
        save_weights: which trials' weights (those of the trial's best epoch) are written to the
            trials' folder, where `result.tuner.get_best_models()` loads them from. `"best"`: a
            trial's best epoch is kept in memory and written once, when the trial ends, only if no
            earlier trial scored higher, so the best trial's weights are on disk
            (`get_best_models(num_models=1)`) and most trials write nothing. `"all"`: KerasTuner's
            behaviour, every trial writes its weights after each epoch that improves its score
            (`get_best_models(num_models=k)` for any k). The trials and scores are the same.
        reuse_compiled: trials share compiled Distillers (one for the losses with a temperature,
            one for those without; see `LossSwitch`) instead of building and tracing one per
            trial. The results are the same; `False` is for checking that.
        verbose: passed to `fit`.

    Returns:
        A `TuneResult` (`rows` best first, `to_markdown()`, `best_distiller_kwargs()`).
    """
    kt = _keras_tuner()
    if not callable(build_student):
        raise TypeError(
            f"`build_student` must be a function returning a fresh student model. Received: {build_student!r}"
        )
    _check_cached(train_data)
    temperatures = _check_space(temperatures, "temperatures", lambda t: kd_losses.logits.check_temperature(t))
    alphas = _check_space(alphas, "alphas", _check_alpha)
    losses = _check_space(losses, "losses", _check_loss_name)
    if isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials < 1:
        raise ValueError(f"`max_trials` must be a positive integer. Received: max_trials={max_trials!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"`epochs` must be a positive integer. Received: epochs={epochs!r}")
    if validation_batch_size is not None and (
        isinstance(validation_batch_size, bool) or not isinstance(validation_batch_size, int) or validation_batch_size < 1
    ):
        raise ValueError(
            "`validation_batch_size` must be a positive integer or None. "
            f"Received: validation_batch_size={validation_batch_size!r}"
        )
    if tuner not in TUNERS:
        raise ValueError(f"`tuner` must be one of {TUNERS}. Received: tuner={tuner!r}")
    if save_weights not in SAVE_WEIGHTS:
        raise ValueError(f"`save_weights` must be one of {SAVE_WEIGHTS}. Received: save_weights={save_weights!r}")

    if isinstance(steps_per_execution, bool) or not isinstance(steps_per_execution, int) or steps_per_execution < 1:
        raise ValueError(
            f"`steps_per_execution` must be a positive integer. Received: steps_per_execution={steps_per_execution!r}"
        )
    hypermodel = _hypermodel(
        kt, build_student, temperatures, alphas, losses, optimizer, learning_rate, metrics, jit_compile,
        steps_per_execution,
    )
    directory = directory or tempfile.mkdtemp(prefix="keras_kd_tune_")
    common = dict(
        objective=kt.Objective(objective, direction="max"),
        max_trials=max_trials,
        seed=seed,
        directory=directory,
        project_name=project_name,
        overwrite=True,
    )
    tuner_class = _tuner_class(kt, tuner, hypermodel)
    hypermodel.save_weights = save_weights
    hypermodel.fit_seconds = []
    callbacks = []
    if log_dir is not None:
        os.makedirs(log_dir, exist_ok=True)
        callbacks.append(keras.callbacks.TensorBoard(log_dir))  # KerasTuner logs one run + hparams per trial
    start = time.perf_counter()
    # Trials share compiled Distillers, one per loss group (see DistillationHyperModel); the tuner's
    # first build (which records the search space) is the first pooled Distiller.
    hypermodel.reuse = bool(reuse_compiled)
    # KerasTuner runs two full garbage collections before every trial (`clear_session()`, `gc.collect()`);
    # with TensorFlow and Keras loaded each walks millions of objects (about a second per trial).
    # Freezing what exists now leaves those collections only the objects the search creates, and
    # freezing again at every trial's build (after KerasTuner's collection) only those of one trial.
    # Garbage left in frozen objects (e.g. the last trial's History) waits for `gc.unfreeze()` below.
    frozen = gc.get_freeze_count() == 0
    if frozen:
        gc.collect()
        gc.freeze()
        hypermodel.refreeze = True
    try:
        search_tuner = tuner_class(hypermodel, **common)
        search_tuner.search(
            train_data,
            validation_data=_validation_dataset(validation_data, validation_batch_size),
            validation_batch_size=validation_batch_size,
            epochs=epochs,
            callbacks=callbacks,
            verbose=verbose,
        )
    finally:
        hypermodel.clear()  # tuner.get_best_models() later builds fresh Distillers
        if frozen:
            gc.unfreeze()
    seconds = time.perf_counter() - start
    order = list(search_tuner.oracle.trials)  # trial ids in the order they ran
    rows = []
    for trial in search_tuner.oracle.get_best_trials(num_trials=max_trials):
        score = trial.score
        if score is None:
            continue
        values = trial.hyperparameters.values
        rows.append(
            {
                "trial": trial.trial_id,
                "loss": values["loss"],
                "temperature": float(values["temperature"]),
                "alpha": float(values["alpha"]),
                objective: float(score),
                "seconds": _seconds(hypermodel.fit_seconds, order, trial.trial_id),
            }
        )
    if not rows:
        raise RuntimeError("No trial finished: see KerasTuner's logs in " + directory)
    return TuneResult(rows=rows, objective=objective, tuner=search_tuner, seconds=seconds)


def _check_alpha(alpha):
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"`alpha` must be in [0, 1]. Received: alpha={alpha}")


def _check_loss_name(name):
    if name not in kd_losses.registered_names():
        raise ValueError(
            f"Unknown distillation loss {name!r}. Registered losses: {sorted(kd_losses.registered_names())}"
        )


def _seconds(fit_seconds, order, trial_id):
    index = order.index(trial_id)
    return float(fit_seconds[index]) if index < len(fit_seconds) else float("nan")


def default_row(rows, objective="val_accuracy"):
    """The row of the library defaults (`DEFAULT_LOSS`, `DEFAULT_TEMPERATURE`, `DEFAULT_ALPHA`) if searched."""
    for row in rows:
        if (
            row["loss"] == defaults.DEFAULT_LOSS
            and np.isclose(row["temperature"], defaults.DEFAULT_TEMPERATURE)
            and np.isclose(row["alpha"], defaults.DEFAULT_ALPHA)
        ):
            return row
    return None
