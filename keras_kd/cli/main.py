"""`keras-kd` command line: `demo`, `distill`, `export`, `report` (also `python -m keras_kd`).

Each sub-command lives in its own module under `keras_kd.cli` and exposes
`add_parser(subparsers)` (registering its arguments and `func`) and a `run(args)` function.
"""

import argparse
import importlib
import sys

from keras_kd import __version__

# sub-command name -> module in keras_kd.cli
COMMANDS = {
    "demo": "keras_kd.cli.demo",
    "distill": "keras_kd.cli.distill",
    "export": "keras_kd.cli.export",
    "report": "keras_kd.cli.report",
}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-kd",
        description="Knowledge distillation for Keras 3 / TensorFlow: distill a teacher into a small "
        "student, report, and export it to SavedModel and TFLite.",
    )
    parser.add_argument("--version", action="version", version=f"keras-kd {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMANDS.values():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue
        module.add_parser(subparsers)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
