"""Translation retrieval: is sentence i's translation the nearest of all candidates?

Row i of `source_embeddings` and row i of `target_embeddings` embed a sentence and its
translation. Each source row is compared by cosine similarity with every target row; the rank of
the true target is the number of targets scoring at least as high as it, minus one (ties count
against the model, so a constant embedding scores 0, not 1). top-k = mean(rank < k).
This is sentence-transformers' `TranslationEvaluator` (Reimers & Gurevych 2020), with top-k.
"""

import numpy as np


def _as_matrix(x, name):
    x = np.asarray(x, dtype="float64")
    if x.ndim != 2:
        raise ValueError(f"`{name}` must be a 2-D array (n, dim). Received: shape={x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    return x


def retrieval_ranks(source_embeddings, target_embeddings):
    """0-based rank of target i among all targets for source i (cosine similarity, ties against)."""
    source = _as_matrix(source_embeddings, "source_embeddings")
    target = _as_matrix(target_embeddings, "target_embeddings")
    if source.shape != target.shape:
        raise ValueError(
            "`source_embeddings` and `target_embeddings` must have the same shape (row i of one "
            f"is the translation of row i of the other). Received: {source.shape} and {target.shape}"
        )
    if len(source) == 0:
        raise ValueError("`source_embeddings` is empty: nothing to retrieve.")
    source = source / np.maximum(np.linalg.norm(source, axis=1, keepdims=True), 1e-12)
    target = target / np.maximum(np.linalg.norm(target, axis=1, keepdims=True), 1e-12)
    scores = source @ target.T
    true = np.diag(scores)[:, None]
    # Round so that equal cosines computed in different orders still tie.
    return np.sum(np.round(scores - true, 9) >= 0, axis=1) - 1


def translation_retrieval(source_embeddings, target_embeddings, ks=(1, 5)):
    """Top-k translation-retrieval accuracy.

    Args:
        source_embeddings: `(n, dim)` embeddings of n sentences (e.g. the translations).
        target_embeddings: `(n, dim)` embeddings of their counterparts (e.g. the English), row i
            matching row i.
        ks: the k of each top-k figure.

    Returns:
        `{"top1": ..., "top5": ..., "mean_rank": ..., "n": n}` (keys follow `ks`; `mean_rank`
        is 0-based).

    Example: sources `[[1, 0], [0, 1]]`, targets `[[0.9, 0.1], [1, 0.2]]`. Source 0's cosines
    are 0.994 (target 0) and 0.981 (target 1): right. Source 1's are 0.110 and 0.196: right
    too, so top1 = 1.0. With targets swapped both are wrong: top1 = 0.0, top5 = 1.0.
    """
    ks = tuple(int(k) for k in ks)
    if any(k < 1 for k in ks):
        raise ValueError(f"`ks` must hold positive integers. Received: ks={ks}")
    ranks = retrieval_ranks(source_embeddings, target_embeddings)
    result = {f"top{k}": float(np.mean(ranks < k)) for k in ks}
    result["mean_rank"] = float(np.mean(ranks))
    result["n"] = int(len(ranks))
    return result
