"""Evaluation that needs the models' outputs: retrieval metrics on embeddings.

- `translation_retrieval(source_embeddings, target_embeddings)`: top-k accuracy of finding each
  sentence's translation among all candidates by cosine similarity (as sentence-transformers'
  `TranslationEvaluator`).
"""

from keras_kd.evaluation.retrieval import retrieval_ranks, translation_retrieval

__all__ = ["retrieval_ranks", "translation_retrieval"]
