"""Write one benchmark's section of benchmarks/RESULTS.md, leaving the other sections alone."""

import pathlib
import platform
import re
import time

RESULTS = pathlib.Path(__file__).with_name("RESULTS.md")
HEADER = "# Benchmark results\n\nEach section is written by the script it names, from one run on the machine it states.\n"


def machine():
    """A one-line description of the machine (cores, Python, TF, Keras)."""
    import os

    import keras
    import tensorflow as tf

    return (
        f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, TensorFlow {tf.__version__}, Keras {keras.__version__}"
    )


def write_section(name, markdown):
    """Replace (or append) the section delimited by `<!-- begin:name -->` / `<!-- end:name -->`."""
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    stamp = time.strftime("%Y-%m-%d")
    block = f"<!-- begin:{name} -->\n{markdown.strip()}\n\n_Run on {stamp}: {machine()}._\n<!-- end:{name} -->"
    pattern = re.compile(rf"<!-- begin:{re.escape(name)} -->.*?<!-- end:{re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)
    return RESULTS
