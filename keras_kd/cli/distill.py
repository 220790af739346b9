"""`keras-kd distill --config FILE.yaml`: run a config through `keras_kd.pipeline`.

    keras-kd distill --config examples/configs/demo.yaml
    keras-kd distill --config my.yaml --smoke          # one step on a tiny slice: checks the config
    keras-kd distill --config my.yaml --quick          # the config's `quick:` overrides (small, fast)

Steps: load the data (`data`), build or load the teacher (train it first when `teacher.train_epochs
> 0`), label the transfer set once and cache its logits, train the student from scratch (the
baseline) and by distillation, compare them on the test set, export the student (SavedModel, TFLite)
and write `saved_models/<name>/report.md` and TensorBoard logs in `runs/<name>/`. Every key:
docs/guides/configs.md.

Configs never run code you did not allow: a `builder` is a registered model
(`keras_kd.models.registered_models()`); `module:function` builders need `--allow-code` or
`--allow module:function` (refused before anything is imported).
"""

import argparse


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "distill",
        help="distill a teacher into a student from a YAML config (see examples/configs/)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", required=True, help="the YAML config file")
    add_run_arguments(parser)
    parser.add_argument("--smoke", action="store_true",
                        help="validate the config and run one training step on a tiny slice (no int8 TFLite)")
    parser.add_argument("--allow-code", action="store_true",
                        help="let the config name any 'module:function' builder (runs that code)")
    parser.add_argument("--allow", action="append", default=[], metavar="MODULE:FUNCTION",
                        help="allow one 'module:function' (or 'module:*') builder; repeatable")
    parser.set_defaults(func=run)
    return parser


def add_run_arguments(parser):
    """The overrides `distill` and `demo` share."""
    parser.add_argument("--quick", action="store_true",
                        help="apply the config's `quick:` section: a small slice, one epoch each (seconds to minutes)")
    parser.add_argument("--seed", type=int, default=None, help="override the config's seed")
    parser.add_argument("--run-name", default=None, help="override the config's name (saved_models/<name>/)")
    parser.add_argument("--output-dir", default=None, help="override output.saved_models_dir")
    parser.add_argument("--runs-dir", default=None, help="override output.runs_dir (TensorBoard)")


def run(args):
    """Entry point of `keras-kd distill`."""
    import warnings

    from keras_kd import pipeline

    warnings.filterwarnings("ignore", category=UserWarning, module="keras")
    pipeline.run(args.config, quick=args.quick, smoke=args.smoke, seed=args.seed, run_name=args.run_name,
                 output_dir=args.output_dir, runs_dir=args.runs_dir, allow_code=args.allow_code,
                 allow_list=args.allow, verbose=2 if args.smoke else 1)
    return 0
