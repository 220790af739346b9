"""`keras-kd export`: write a saved student (`.keras`) as a SavedModel or a `.tflite` file.

    keras-kd export --model student.keras --format saved_model --output saved_models/student
    keras-kd export --model student.keras --format tflite --quantization int8 \\
        --representative-data x_train.npy --output saved_models/ [--check x_test.npy --labels y_test.npy]

A `.keras` file holding a whole `keras_kd.Distiller` is accepted too: only its student is exported.
"""

import os

FORMATS = ("saved_model", "tflite")
QUANTIZATION_CHOICES = ("none", "float16", "dynamic", "int8")


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="export a trained student to SavedModel or TFLite",
        description="Export a trained student (.keras) to a SavedModel (serving_default returns logits, "
        "probabilities, labels) or to TFLite (float32, float16, dynamic-range or full-integer int8).",
    )
    parser.add_argument(
        "--model", required=True, help="the student (or a Distiller) saved as a .keras file"
    )
    parser.add_argument("--format", choices=FORMATS, default="saved_model", help="output format")
    parser.add_argument(
        "--quantization",
        choices=QUANTIZATION_CHOICES,
        default="none",
        help="TFLite quantization (tflite only)",
    )
    parser.add_argument(
        "--output",
        required=True,
        help="the SavedModel directory (saved_model), or a .tflite file or a directory to write "
        "<model>_<quantization>.tflite into (tflite)",
    )
    parser.add_argument(
        "--representative-data",
        metavar="FILE.npy",
        help="training inputs (.npy, one example per row) to calibrate int8 quantization",
    )
    parser.add_argument(
        "--class-names", help="comma-separated class names (SavedModel `label_names` output)"
    )
    parser.add_argument(
        "--check",
        metavar="FILE.npy",
        help="held-out inputs (.npy): print agreement, logit difference, latency and size vs the Keras model",
    )
    parser.add_argument("--labels", metavar="FILE.npy", help="labels for --check (adds accuracy)")
    parser.set_defaults(func=run)
    return parser


def _tflite_path(output, model_path, quantization):
    if output.endswith(".tflite"):
        return output
    stem = os.path.splitext(os.path.basename(model_path))[0]
    return os.path.join(
        output, f"{stem}_{'float32' if quantization == 'none' else quantization}.tflite"
    )


def run(args):
    import keras
    import numpy as np

    from keras_kd import export

    if args.format != "tflite" and args.quantization != "none":
        raise SystemExit(
            f"--quantization applies to --format tflite only. Received: --format {args.format}"
        )
    if args.quantization == "int8" and not args.representative_data:
        raise SystemExit(
            "--quantization int8 needs --representative-data FILE.npy (training inputs for calibration)."
        )
    if not os.path.exists(args.model):
        raise SystemExit(f"--model: no such file: {args.model}")
    model = export.student_model(keras.saving.load_model(args.model, safe_mode=True))

    if args.format == "saved_model":
        class_names = args.class_names.split(",") if args.class_names else None
        path = export.saved_model(model, args.output, class_names=class_names)
        size = sum(
            os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files
        )
    else:
        representative = np.load(args.representative_data) if args.representative_data else None
        path = export.tflite(
            model,
            _tflite_path(args.output, args.model, args.quantization),
            quantization=args.quantization,
            representative_data=representative,
        )
        size = os.path.getsize(path)
    print(f"Wrote {path} ({size / 1024:.1f} KB)")

    if args.check:
        if args.format != "tflite":
            raise SystemExit(
                "--check compares a TFLite export with the Keras model: use --format tflite."
            )
        labels = np.load(args.labels) if args.labels else None
        rows = export.compare_exports(
            model,
            {f"TFLite {args.quantization}": path},
            np.load(args.check),
            labels,
            max_examples=None,
        )
        print(export.format_table(rows))
    return 0
