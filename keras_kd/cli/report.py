"""`keras-kd report`: compare saved models on a dataset and write `report.md` with plots.

    keras-kd report --models saved_models/<run>/teacher.keras saved_models/<run>/student.keras \
        --config examples/configs/zh_sentiment.yaml --output-dir reports/zh

The report helpers (`model_row`, `write_report`, ...) live in `keras_kd.pipeline.report`.
"""

import os

from keras_kd.pipeline.report import TABLE_COLUMNS, model_row, write_report
from keras_kd.reports import metrics

# ---------------------------------------------------------------- `keras-kd report`


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "report",
        help="compare saved Keras models (.keras) on a test set and write report.md with plots",
        description=__doc__,
    )
    parser.add_argument("--models", nargs="+", required=True,
                        help="saved .keras models; the first one is the reference (teacher) for agreement")
    parser.add_argument("--names", nargs="+", default=None, help="display names (default: file names)")
    parser.add_argument("--config", default=None,
                        help="a keras-kd YAML config: its data section says how to load and tokenize the data")
    parser.add_argument("--dataset", default=None,
                        help="dataset name (keras_kd.data.datasets) when no --config is given")
    parser.add_argument("--max-examples", type=int, default=None, help="evaluate on the first N test examples")
    parser.add_argument("--output-dir", required=True, help="where report.md and the plots go")
    parser.set_defaults(func=run)
    return parser


def run(args):
    """Entry point of `keras-kd report`."""
    import keras

    from keras_kd.pipeline import config as config_lib
    from keras_kd.pipeline.data import prepare_data

    if args.config:
        config = config_lib.load_config(args.config)
    elif args.dataset:
        config = config_lib.parse_config(
            {"teacher": {"path": args.models[0]}, "student": {"path": args.models[-1]}, "data": {"dataset": args.dataset}}
        )
    else:
        raise SystemExit("give --config FILE.yaml or --dataset NAME to say what to evaluate on.")
    names = args.names or [os.path.splitext(os.path.basename(p.rstrip("/")))[0] for p in args.models]
    if len(names) != len(args.models):
        raise SystemExit(f"{len(args.models)} models but {len(names)} --names.")
    data = prepare_data(config, max_test_examples=args.max_examples)
    rows, predictions, reference = [], {}, None
    for name, path in zip(names, args.models, strict=True):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--models: no such file: {path}")
        model = keras.saving.load_model(path, safe_mode=True)
        row = model_row(name, model, data.x_test, data.y_test, size_path=path, reference_logits=reference,
                        class_names=data.class_names)
        reference = row["_logits"] if reference is None else reference
        predictions[name] = (data.y_test, row.pop("_logits"))
        rows.append(row)
    path = write_report(args.output_dir, title=f"keras-kd report: {config.data.dataset or config.name}", rows=rows,
                        class_names=data.class_names, predictions=predictions)
    printable = [{k: v for k, v in row.items() if not k.startswith("_")} for row in rows]
    print(metrics.comparison_table(printable, columns=TABLE_COLUMNS, fmt="text"))
    print(f"\nReport: {path}")
    return 0
