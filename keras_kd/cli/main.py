"""`keras-kd` command line: `demo`, `distill`, `export`, `report`, `cache`, `tune` (also `python -m keras_kd`).

Each sub-command lives in its own module under `keras_kd.cli` and exposes `add_parser(subparsers)`
(registering its arguments and `func=run`). To add one: write `keras_kd/cli/<name>.py` and add one
line `"<name>": "keras_kd.cli.<name>",` to `COMMANDS`.

Errors: a user error (a bad config value, a missing file, a missing optional package: `ValueError`,
`TypeError`, `OSError`, `ImportError`, `KeyError`) prints ONE line `keras-kd <command>: error: ...`
and exits with status 2; any other exception prints one line and exits with status 1. `--debug`
(anywhere on the command line) shows the full traceback instead.
"""

import argparse
import importlib
import os
import sys

from keras_kd import __version__

# sub-command name -> module in keras_kd.cli (a module that is not installed is skipped)
COMMANDS = {
    "demo": "keras_kd.cli.demo",
    "distill": "keras_kd.cli.distill",
    "export": "keras_kd.cli.export",
    "report": "keras_kd.cli.report",
    "cache": "keras_kd.cli.cache",
    "tune": "keras_kd.cli.tune",
}
USER_ERRORS = (ValueError, TypeError, OSError, ImportError, KeyError)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-kd",
        description="Knowledge distillation for Keras 3 / TensorFlow: distill a teacher into a small "
        "student, report, and export it to SavedModel and TFLite. Add --debug to any command for tracebacks.",
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


def one_line(error):
    """An exception as one line: its message with whitespace collapsed (KeyError's quotes dropped)."""
    message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    message = " ".join(str(message).split())
    return message or type(error).__name__


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_extra_args", False):  # only `cache` takes Beam options
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra_args = extra
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    args.debug = debug
    if debug:
        return args.func(args) or 0
    prog = f"keras-kd {args.command}"
    try:
        return args.func(args) or 0
    except SystemExit as exit_:
        if isinstance(exit_.code, str):
            print(f"{prog}: error: {' '.join(exit_.code.split())}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as error:
        print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - one line, never a traceback without --debug
        print(f"{prog}: error: {type(error).__name__}: {one_line(error)} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
