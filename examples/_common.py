"""What every example shares: command-line flags, seeding, timing, hardware line, JSON results rows.

Each example writes `examples/results/<name>.json`:

    {"example": ..., "command": ..., "hardware": ..., "date": ..., "rows": [
        {"model": ..., "role": "teacher" | "student", "params": ..., "metrics": {...},
         "time_s": ..., "note": ...}, ...],
     "summary": {...}}

and `examples/make_results_table.py` turns all of them into the README's results table.
"""

import argparse
import json
import os
import pathlib
import platform
import shlex
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EXAMPLES = pathlib.Path(__file__).resolve().parent
ROOT = EXAMPLES.parent
RESULTS = EXAMPLES / "results"
CACHE = ROOT / ".cache" / "examples"  # git-ignored: teacher embeddings, trained teachers

if str(ROOT) not in sys.path:  # run as `python examples/x.py` from a checkout
    sys.path.insert(0, str(ROOT))


def parser(name, description, seeds=(0, 1, 2), epochs=3):
    """An argparse parser with the flags every example takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--seeds", type=int, nargs="+", default=list(seeds), help="random seeds (one run each)")
    p.add_argument("--epochs", type=int, default=epochs, help="student training epochs")
    p.add_argument("--smoke", action="store_true", help="a few steps on tiny slices (for tests)")
    p.add_argument("--output", default=str(RESULTS / f"{name}.json"), help="where to write the results JSON")
    return p


def command_line():
    """The command that produced the current run, as a user would type it."""
    script = pathlib.Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(ROOT)
    except ValueError:
        pass
    return " ".join(["python", str(script), *map(shlex.quote, sys.argv[1:])])


def hardware():
    """A one-line description of this machine (cores, CPU, Python, TensorFlow, Keras)."""
    import keras
    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPU cores ({cpu}), no GPU, Python {platform.python_version()}, "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}"
    )


def set_seed(seed):
    import keras

    keras.utils.set_random_seed(int(seed))


class Timer:
    """`with Timer() as t: ...; t.seconds`."""

    def __enter__(self):
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def count_params(model):
    return int(sum(int(w.numpy().size) for w in model.weights if w.trainable) or model.count_params())


def mean_std(values):
    import numpy as np

    values = np.asarray(values, dtype="float64")
    return {"mean": float(values.mean()), "std": float(values.std()), "values": [float(v) for v in values]}


def write_results(path, example, rows, summary=None, note=None, smoke=False):
    """Write the results JSON (and print each row); returns the document."""
    document = {
        "example": example,
        "command": command_line(),
        "hardware": hardware(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "smoke": bool(smoke),
        "rows": rows,
        "summary": summary or {},
    }
    if note:
        document["note"] = note
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    for row in rows:
        metrics = ", ".join(
            f"{k}={_fmt(v)}" for k, v in row.get("metrics", {}).items() if not isinstance(v, dict) or "mean" in v
        )
        print(f"[{example}] {row['model']} ({row.get('params', '?')} params): {metrics}  time={row.get('time_s', 0):.1f}s")
    if summary:
        print(f"[{example}] summary: {json.dumps(summary, ensure_ascii=False)}")
    print(f"[{example}] wrote {path}")
    return document


def _fmt(value):
    if isinstance(value, dict) and "mean" in value:
        return f"{value['mean']:.4f}±{value['std']:.4f}"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def accuracy(logits, labels):
    import numpy as np

    return float(np.mean(np.argmax(logits, axis=-1) == np.asarray(labels)))

