"""Peak memory of caching a large transfer set: the sharded cache streams, so RSS stays flat.

A generator yields `--rows` (2,000,000) rows of 16 float features in batches of 4096; a small MLP
teacher (16 → 64 → 10 logits) labels them. The resident set size (RSS, `/proc/self/status`) is
sampled every 20 ms by a thread. Baseline: RSS after the teacher is built and has run once (the
teacher's own footprint, TF runtime included). Reported: peak RSS growth above that baseline while
`cache_teacher_outputs(..., path=...)` writes the shards (target ≤ 300 MB), then, for comparison,
while the in-memory cache (`path=None`, which keeps every row in RAM) runs on the same rows.

    nice -n 10 python benchmarks/cache_memory.py [--rows 2000000] [--skip-in-memory] [--no-write]
"""

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _results  # noqa: E402

from keras_kd.data import cache  # noqa: E402

FEATURES, CLASSES, BATCH = 16, 10, 4096


def rss_mb():
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class PeakRSS:
    """Samples RSS in a thread; `peak` is the largest value seen between start and stop."""

    def __init__(self, interval=0.02):
        self.interval, self.peak, self._stop = interval, 0.0, threading.Event()

    def __enter__(self):
        self.peak = rss_mb()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb())
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def row_batches(rows):
    """A generator dataset: rows are produced on the fly, never held."""

    def generate():
        rng = np.random.default_rng(0)
        for start in range(0, rows, BATCH):
            n = min(BATCH, rows - start)
            yield (
                rng.normal(size=(n, FEATURES)).astype("float32"),
                rng.integers(0, CLASSES, size=n).astype("int32"),
            )

    spec = (
        tf.TensorSpec((None, FEATURES), tf.float32),
        tf.TensorSpec((None,), tf.int32),
    )
    return tf.data.Dataset.from_generator(generate, output_signature=spec)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--skip-in-memory", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)

    teacher = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(CLASSES),
        ]
    )
    for batch in row_batches(BATCH).take(1):  # run the teacher once: its footprint is the baseline
        cache.run_teacher(teacher, tf.data.Dataset.from_tensors(batch), verbose=0)
    baseline = rss_mb()
    folder = tempfile.mkdtemp(prefix="kd_cache_memory_")
    try:
        start = time.perf_counter()
        with PeakRSS() as sharded:
            cache.cache_teacher_outputs(teacher, row_batches(args.rows), path=folder, verbose=0)
        sharded_seconds = time.perf_counter() - start
        manifest = cache.read_manifest(folder)
        disk_mb = cache.cache_size_bytes(folder) / 2**20
        start = time.perf_counter()
        count = sum(
            int(tf.shape(x["teacher_outputs"]["logits"])[0])
            for x, _ in cache.load_cached_teacher_outputs(folder, batch_size=BATCH)
        )
        read_seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert count == args.rows == manifest["num_examples"], (count, args.rows)
    rows = [
        f"| sharded on disk (`path=...`) | {sharded.peak - baseline:.0f} | {sharded_seconds:.0f} | "
        f"{len(manifest['shards'])} shards, {disk_mb:.0f} MB |"
    ]
    if not args.skip_in_memory:
        before = rss_mb()
        start = time.perf_counter()
        with PeakRSS() as in_memory:
            element, _, _ = cache.run_teacher(teacher, row_batches(args.rows), verbose=0)
        in_memory_seconds = time.perf_counter() - start
        del element
        rows.append(
            f"| in memory (`path=None`) | {in_memory.peak - before:.0f} | {in_memory_seconds:.0f} | RAM |"
        )
    text = (
        "## Cache memory (`benchmarks/cache_memory.py`)\n\n"
        f"Caching {args.rows:,} generated rows ({FEATURES} float features, {CLASSES}-class logits, int label; "
        f"batches of {BATCH}) with a 16→64→10 MLP teacher. Peak RSS growth above the teacher's own footprint "
        f"({baseline:.0f} MB RSS after building and running it once), sampled every 20 ms. Target: ≤ 300 MB "
        "for the sharded cache. Reading the whole cache back (checksums verified) took "
        f"{read_seconds:.0f} s.\n\n"
        "| cache | peak RSS growth (MB) | wall time (s) | storage |\n|---|---:|---:|---|\n"
        + "\n".join(rows)
        + "\n\nCommand: `nice -n 10 python benchmarks/cache_memory.py --rows "
        f"{args.rows}`. Times are on a shared, loaded machine (other jobs running): memory is the number "
        "that matters here."
    )
    print(text)
    if not args.no_write:
        _results.write_section("cache_memory", text)


if __name__ == "__main__":
    main()
