"""`keras-kd tune --config FILE.yaml --trials N`: search T, alpha and the loss on cached teacher outputs.

    keras-kd tune --config examples/configs/fashion_mnist.yaml --trials 16 --epochs 3
    keras-kd tune --config my.yaml --trials 8 --temperatures 1 2 4 --alphas 0.5 0.9 1.0 --losses kl dist

Uses the config's data, teacher (trained first when `teacher.train_epochs > 0`), student and
optimizer (see `keras-kd distill`). The teacher labels the training and validation sets ONCE; every
trial trains a fresh student on those cached outputs (`keras_kd.tune.search`, KerasTuner) and is
scored on the validation set. Writes `saved_models/<name>/tune.md` (the trials, best first) and
TensorBoard logs in `runs/<name>/tune/` (HParams dashboard: `tensorboard --logdir runs/<name>/tune`).
Needs `pip install "keras-kd[tune]"`.
"""

import argparse
import os
import time


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "tune",
        help="search temperature, alpha and the distillation loss on cached teacher outputs (KerasTuner)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", required=True, help="the YAML config file (as for `keras-kd distill`)")
    parser.add_argument("--trials", type=int, default=16, help="number of trials (default 16)")
    parser.add_argument("--epochs", type=int, default=None, help="student epochs per trial (default: training.epochs)")
    parser.add_argument("--temperatures", type=float, nargs="+", default=None, help="default: 1 2 4")
    parser.add_argument("--alphas", type=float, nargs="+", default=None, help="default: 0.5 0.7 0.9 1.0")
    parser.add_argument("--losses", nargs="+", default=None, help="registered loss names (default: kl dist js)")
    parser.add_argument("--tuner", default="random", choices=("random", "grid", "bayesian"))
    parser.add_argument("--seed", type=int, default=None, help="override the config's seed")
    parser.add_argument("--quick", action="store_true", help="apply the config's `quick:` section")
    parser.add_argument("--smoke", action="store_true", help="a tiny slice, 1 epoch per trial (checks the setup)")
    parser.add_argument("--output-dir", default=None, help="override output.saved_models_dir")
    parser.add_argument("--runs-dir", default=None, help="override output.runs_dir (TensorBoard)")
    parser.set_defaults(func=run)
    return parser


def run(args):
    """Entry point of `keras-kd tune`."""
    import warnings

    import keras

    from keras_kd import pipeline, tune
    from keras_kd.data.cache import cache_teacher_outputs
    from keras_kd.pipeline import steps
    from keras_kd.pipeline.common import build_student
    from keras_kd.pipeline.data import prepare_data
    from keras_kd.pipeline.teachers import load_teacher

    warnings.filterwarnings("ignore", category=UserWarning, module="keras")
    overrides = {"seed": args.seed} if args.seed is not None else None
    config = pipeline.load_config(args.config, quick=args.quick, overrides=overrides)
    if config.teacher is None:
        raise ValueError(f"{args.config}: `keras-kd tune` needs one `teacher` (not a list of teachers).")
    keras.utils.set_random_seed(config.seed)
    out_dir, run_dir = config.run_dirs(args.output_dir, args.runs_dir)
    os.makedirs(out_dir, exist_ok=True)
    data = prepare_data(config, smoke=args.smoke)
    if not len(data.y_val):
        raise ValueError(f"{args.config}: `keras-kd tune` scores trials on a validation split; set "
                         "`data.validation_fraction` > 0.")
    teacher = load_teacher(config.teacher, "teacher", data, config.options)
    if teacher.config.train_epochs:
        print(f"Training the teacher ({1 if args.smoke else teacher.config.train_epochs} epoch(s))", flush=True)
        steps._train_teacher(teacher, teacher.config, data, config.training.batch_size, args.smoke, run_dir, 1)
    batch = config.training.batch_size
    print("Labelling the training and validation sets with the teacher (once)", flush=True)
    start = time.perf_counter()
    train = cache_teacher_outputs(
        teacher.model, steps._dataset(steps._model_inputs(teacher, data, "train"), data.y_train, 512),
        batch_size=batch, shuffle=True, seed=config.seed, verbose=0)
    cache_seconds = time.perf_counter() - start
    validation = (data.x_val, data.y_val)
    epochs = 1 if args.smoke else (args.epochs or config.training.epochs)
    space = {k: tuple(v) for k, v in (("temperatures", args.temperatures), ("alphas", args.alphas),
                                       ("losses", args.losses)) if v}
    print(f"Searching: {args.trials} trials x {epochs} epoch(s) on the cached outputs", flush=True)
    result = tune.search(
        lambda: build_student(config, data, config.options, "student"), train, validation,
        max_trials=args.trials, epochs=epochs, tuner=args.tuner, optimizer=config.training.build_optimizer(),
        seed=config.seed, directory=os.path.join(run_dir, "tune_trials"), log_dir=os.path.join(run_dir, "tune"),
        **space)
    report = (f"# Tuning `{config.name}`\n\n"
              f"`keras-kd tune --config {args.config} --trials {args.trials}` — {len(result.rows)} trials, "
              f"{epochs} epoch(s) each on cached teacher outputs (teacher pass {cache_seconds:.1f} s, once; "
              f"search {result.seconds:.1f} s). Best first; TensorBoard HParams: `tensorboard --logdir "
              f"{os.path.join(run_dir, 'tune')}`.\n\n{result.to_markdown()}\n")
    path = os.path.join(out_dir, "tune.md")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(report)
    print(report)
    print(f"Best: loss={result.best['loss']} temperature={result.best['temperature']:g} "
          f"alpha={result.best['alpha']:g} ({result.objective} {result.best[result.objective]:.4f}); wrote {path}")
    return 0
