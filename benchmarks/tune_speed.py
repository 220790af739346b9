"""Cost of a T / alpha / loss search: `keras_kd.tune` on cached teacher outputs vs online KD runs.

Fashion-MNIST (apt-get install dataset-fashion-mnist). Teacher: the CNN teacher of
examples/fashion_mnist.py (recipe "a", 421,642 params; reloaded from .cache/examples when that example
has run, else trained here). Student: its 9,098-param CNN (46x smaller). In one process, one after the
other (wall time and this process's CPU time, each including tracing):

1. cached: the teacher labels the training split ONCE (`cache_teacher_outputs`), then
   `tune.search` runs `--trials` trials (random search over T ∈ {1, 2, 4}, alpha ∈ {0.5, 0.7, 0.9, 1.0},
   loss ∈ {kl, dist, js}), each a fresh student trained `--epochs` epochs on the cached outputs;
2. online: the SAME hyperparameters, each a fresh student trained `--epochs` epochs with
   `Distiller(student, teacher)` (the teacher runs on every batch);
3. step 1 again (same seed, same trials): the cached time is the mean of its two runs, so a machine
   load that drifts during the run weighs on both variants alike;
4. the library defaults, trained once on the cached outputs, scored like the trials.

Trials are scored on a held-out validation split (the last 10 % of the training images), in batches of
`--validation-batch-size` in BOTH variants (`tune.search(validation_batch_size=...)` batches the arrays once
into an in-memory dataset; the online runs get the same dataset, built the same way;
Keras' default of 32 makes each validation pass several times dearer in both; the cost of one pass at 32 is
measured too). Writes its section of benchmarks/RESULTS.md.

    python benchmarks/tune_speed.py [--trials 16] [--epochs 2] [--train-examples 10000]
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples"))
import _results  # noqa: E402
import fashion_mnist  # noqa: E402

import keras_kd  # noqa: E402
from keras_kd import defaults, tune  # noqa: E402
from keras_kd.data import cache_teacher_outputs  # noqa: E402


def validation_costs(teacher, build_student, x_val, y_val, batch_sizes, rounds=3):
    """CPU s of one validation pass (`evaluate`, after tracing) per variant and batch size: the cached
    variant's Distiller runs the student alone, the online one the student and the teacher."""
    costs = {}
    for name in ("cached", "online"):
        distiller = keras_kd.Distiller(build_student(), None if name == "cached" else teacher)
        distiller.compile(optimizer="adam", metrics=["accuracy"])
        for size in batch_sizes:
            distiller.evaluate(x_val, y_val, batch_size=size, verbose=0)  # traces
            times = []
            for _ in range(rounds):
                start = time.process_time()
                distiller.evaluate(x_val, y_val, batch_size=size, verbose=0)
                times.append(time.process_time() - start)
            costs[name, size] = min(times)
    return costs


def step_costs(teacher, build_student, cached, online, seed, rounds=5, steps=10):
    """CPU ms per batch: a cached Distiller step, an online Distiller step, the teacher's forward pass."""
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    models = {}
    for name, data in (("cached", cached.repeat()), ("online", online)):
        distiller = keras_kd.Distiller(build_student(), None if name == "cached" else teacher)
        distiller.compile(optimizer=keras.optimizers.Adam(2e-3), metrics=["accuracy"])
        distiller.fit(data, steps_per_epoch=2, epochs=1, verbose=0)  # traces
        models[name] = (distiller.train_function, iter(data))
    forward = tf.function(lambda images: teacher(images, training=False))
    batches = iter(online)
    images = [next(batches)[0] for _ in range(steps)]
    forward(images[0])
    times = {name: [] for name in ("cached", "online", "teacher")}
    for _ in range(rounds):
        for name, (function, iterator) in models.items():
            start = time.process_time()
            for _ in range(steps):
                logs = function(iterator)
            float(logs["loss"])
            times[name].append((time.process_time() - start) / steps * 1e3)
        start = time.process_time()
        for batch_images in images:
            out = forward(batch_images)
        out.numpy()
        times["teacher"].append((time.process_time() - start) / steps * 1e3)
    return {name: min(values) for name, values in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-examples", type=int, default=10000, help="training images used (0 = all 54,000)")
    parser.add_argument("--teacher-epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--teachers", nargs="+", default=["a"], help="teacher recipe(s) of examples/fashion_mnist.py; several: one "
        "model averaging their logits (the example's ensemble), used by both variants"
    )
    parser.add_argument("--student", default="cnn8", help="student of examples/fashion_mnist.py")
    parser.add_argument(
        "--validation-batch-size", type=int, default=tune.VALIDATION_BATCH_SIZE,
        help="batch size of the per-epoch validation pass, in both variants",
    )
    parser.add_argument(
        "--steps-per-execution", type=int, default=1,
        help="compile(steps_per_execution=...) of every trial, in both variants (Keras' default: 1)",
    )
    args = parser.parse_args()

    import tensorflow as tf

    (x_all, y_all), _ = fashion_mnist.load_data()
    if args.teachers == ["a"]:  # the original teacher (cached under its original name)
        teacher, _ = fashion_mnist.train_teacher(x_all, y_all, args.teacher_epochs, seed=args.seed)
    else:  # the example's recipes, averaged logits in ONE model (the same teacher for both variants)
        members = [fashion_mnist.train_teacher(x_all, y_all, recipe=name)[0] for name in args.teachers]
        inputs = keras.Input(x_all.shape[1:])
        teacher = keras.Model(inputs, keras.layers.Average()([m(inputs) for m in members]), name="teacher_ensemble")
    n_val = len(y_all) // 10
    x_val, y_val = x_all[-n_val:], y_all[-n_val:]
    x_train, y_train = x_all[:-n_val], y_all[:-n_val]
    if args.train_examples:
        x_train, y_train = x_train[: args.train_examples], y_train[: args.train_examples]
    batch = 128

    def build_student():
        return fashion_mnist.build_student(args.student)

    def source():
        return tf.data.Dataset.from_tensor_slices((x_train, y_train)).batch(512)

    def cached_search():
        """One teacher pass over the training images, then the search: (result, wall s, CPU s, cache s)."""
        keras.utils.set_random_seed(args.seed)
        start, start_cpu = time.perf_counter(), time.process_time()
        cached = cache_teacher_outputs(teacher, source(), batch_size=batch, shuffle=True, seed=args.seed, verbose=0)
        cache_seconds = time.perf_counter() - start
        result = tune.search(
            build_student, cached, (x_val, y_val), max_trials=args.trials, epochs=args.epochs, seed=args.seed,
            optimizer=keras.optimizers.Adam(2e-3), validation_batch_size=args.validation_batch_size,
            steps_per_execution=args.steps_per_execution,
        )
        wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        print(result.to_markdown(), flush=True)
        print(f"cached: {wall:.1f} s wall, {cpu:.1f} s CPU (cache {cache_seconds:.1f} s)", flush=True)
        return cached, result, wall, cpu, cache_seconds

    # 1. cached: one teacher pass, then the search (run again after the online runs: the cached time
    # is the mean of the two, so a load that drifts during the run affects both variants alike)
    cached, result, wall_a, cpu_a, cache_seconds = cached_search()

    # 2. online: the same hyperparameters, the teacher runs on every batch
    online = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(len(y_train), seed=args.seed).batch(batch)
    # The validation arrays batched once, in memory, as `tune.search` does for its trials.
    online_validation = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(args.validation_batch_size).cache()
    start, start_cpu = time.perf_counter(), time.process_time()
    online_scores, online_fit_seconds = [], []
    for row in sorted(result.rows, key=lambda r: r["trial"]):
        keras.utils.set_random_seed(args.seed)
        distiller = keras_kd.Distiller(
            build_student(), teacher, distillation_loss=tune.make_loss(row["loss"], row["temperature"]),
            alpha=row["alpha"],
        )
        distiller.compile(
            optimizer=keras.optimizers.Adam(2e-3), metrics=["accuracy"], steps_per_execution=args.steps_per_execution
        )
        fit_start = time.perf_counter()
        history = distiller.fit(online, validation_data=online_validation, epochs=args.epochs, verbose=0)
        online_fit_seconds.append(time.perf_counter() - fit_start)
        online_scores.append(history.history["val_accuracy"][-1])
        print(f"online trial {row['trial']}: {online_scores[-1]:.4f} ({online_fit_seconds[-1]:.1f} s)", flush=True)
    online_seconds, online_cpu = time.perf_counter() - start, time.process_time() - start_cpu

    # 1b. the cached search again (same seed: the same trials)
    _, _, wall_b, cpu_b, _ = cached_search()
    cached_seconds, cached_cpu = (wall_a + wall_b) / 2, (cpu_a + cpu_b) / 2

    # per-batch CPU cost of one training step in each variant (what a run cannot go below)
    steps = step_costs(teacher, build_student, cached, online.repeat(), args.seed)
    print(f"per-batch CPU ms: {steps}", flush=True)
    vbs = args.validation_batch_size
    passes = validation_costs(teacher, build_student, x_val, y_val, sorted({32, vbs}))
    print(f"CPU s per validation pass: {passes}", flush=True)

    # 3. the defaults, on the cached outputs, scored like a trial
    default = tune.default_row(result.rows)
    if default is None:
        keras.utils.set_random_seed(args.seed)
        distiller = keras_kd.Distiller(build_student(), None)
        distiller.compile(optimizer=keras.optimizers.Adam(2e-3), metrics=["accuracy"])
        history = distiller.fit(
            cached, validation_data=(x_val, y_val), validation_batch_size=args.validation_batch_size,
            epochs=args.epochs, verbose=0,
        )
        default_score = history.history["val_accuracy"][-1]
    else:
        default_score = default["val_accuracy"]
    best = result.best
    ratio, cpu_ratio = cached_seconds / online_seconds, cached_cpu / online_cpu
    cached_fits = [row["seconds"] for row in result.rows]
    n_steps = -(-len(y_train) // batch) * args.epochs * len(result.rows)
    n_passes = args.epochs * len(result.rows)
    floor = (n_steps * steps["cached"] / 1e3 + n_passes * passes["cached", vbs]) / (
        n_steps * steps["online"] / 1e3 + n_passes * passes["online", vbs]
    )
    markdown = f"""## Tuning on cached teacher outputs (`benchmarks/tune_speed.py`)

Fashion-MNIST, teacher = {"the CNN teacher" if len(args.teachers) == 1 else "the ensemble (mean logits) of the CNN teachers"} {" + ".join(args.teachers)} of `examples/fashion_mnist.py` ({teacher.count_params():,} params),
student = its {args.student} CNN ({build_student().count_params():,} params); {len(y_train):,} training images, {len(y_val):,}
validation images (scoring), {args.epochs} epoch(s) per trial, batch {batch}, Adam 2e-3, `steps_per_execution={args.steps_per_execution}` in both variants; random search,
{len(result.rows)} trials over T ∈ {{1, 2, 4}}, alpha ∈ {{0.5, 0.7, 0.9, 1.0}}, loss ∈ {{kl, dist, js}}. Both
variants ran in this one process, tracing included, in the order cached search, online runs, cached search
again; the cached time is the mean of its two runs ({wall_a:.1f} s and {wall_b:.1f} s wall, {cpu_a:.1f} s and
{cpu_b:.1f} s CPU), so load that drifts during the run weighs on both variants alike. CPU time is this
process's (all its threads), less sensitive than wall time to other processes on the machine.

| variant | wall time (s) | vs online | CPU time (s) | vs online | mean fit per trial (s) |
|---|---:|---:|---:|---:|---:|
| `keras_kd.tune.search` on cached outputs (one teacher pass {cache_seconds:.1f} s + search) | {cached_seconds:.1f} | **{ratio:.2f}×** | {cached_cpu:.1f} | **{cpu_ratio:.2f}×** | {sum(cached_fits) / len(cached_fits):.1f} |
| {len(online_scores)} online KD runs (`Distiller(student, teacher)`, same hyperparameters) | {online_seconds:.1f} | 1.00× | {online_cpu:.1f} | 1.00× | {sum(online_fit_seconds) / len(online_fit_seconds):.1f} |

Per batch of {batch} (this process's CPU time, fastest of 5 × 10 steps, after tracing): a training step
on cached outputs {steps['cached']:.1f} ms, an online KD step {steps['online']:.1f} ms, the teacher's
forward pass alone {steps['teacher']:.1f} ms. So for this pair of models the training steps of a cached
run cost {steps['cached'] / steps['online']:.2f}× those of an online one, its validation passes
{passes['cached', vbs] / passes['online', vbs]:.2f}× (below: the student alone vs student and teacher); together, at these per-batch
and per-pass costs, the steps and passes of the search cost {floor:.2f}× those of the online runs: the floor,
tracing and per-trial overhead aside.

Validation: both variants score the {len(y_val):,} validation images after every epoch in batches of {vbs}
(`tune.search(validation_batch_size={vbs})`, the library's default, batches the arrays once into an in-memory
dataset; the online runs get the same dataset). One pass (`evaluate` on the arrays) costs {passes['cached', vbs]:.2f} s CPU on cached outputs (the student alone) and
{passes['online', vbs]:.2f} s online (student and teacher); at Keras' default batch of 32 it costs
{passes['cached', 32]:.2f} s and {passes['online', 32]:.2f} s: with that default the search's validation passes
({args.epochs * len(result.rows)} of them) would cost {args.epochs * len(result.rows) * (passes['cached', 32] - passes['cached', vbs]):.1f} s CPU more.

Target: ≤ 0.25×. Best trial: `{best['loss']}`, T={best['temperature']:g}, alpha={best['alpha']:g} →
validation accuracy {100 * best['val_accuracy']:.2f} %; the library defaults (`{defaults.DEFAULT_LOSS}`,
T={defaults.DEFAULT_TEMPERATURE:g}, alpha={defaults.DEFAULT_ALPHA:g}) on the same cached outputs:
{100 * default_score:.2f} % ({"best trial beats the defaults" if best['val_accuracy'] > default_score else "the best trial does not beat the defaults"}; one seed, a short schedule: differences
of a few tenths of a point are within seed noise).

Trials (cached, best first):

{result.to_markdown()}

`python benchmarks/tune_speed.py --trials {args.trials} --epochs {args.epochs} --train-examples {args.train_examples} --teachers {" ".join(args.teachers)} --student {args.student} --validation-batch-size {vbs} --steps-per-execution {args.steps_per_execution}`
"""
    print(markdown)
    _results.write_section("tune_speed", markdown)


if __name__ == "__main__":
    main()
