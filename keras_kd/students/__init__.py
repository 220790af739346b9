"""Initialise a student from its teacher (DistilBERT-style) instead of from random weights.

- `embedding_from_teacher(matrix, dim, method="pca")`: the teacher's token-embedding table
  (vocab, d) projected down to (vocab, dim); `embedding_layer_from_teacher` wraps it in a
  `keras.layers.Embedding`, so the student reads the teacher's token ids.
- `copy_layers(source_layers, target_layers)`: copy weights layer by layer (shapes checked);
  `select_layers(num_source, num_target)` picks which teacher layers a shallower student takes
  (DistilBERT: every other one).
- `trim_vocabulary(token_ids, keep_ids)`: keep only the teacher token ids a student's texts use
  (and a lookup that remaps teacher ids), so the same budget buys a wider embedding.
"""

from keras_kd.students.init import (
    copy_layers,
    copy_weights,
    embedding_from_teacher,
    embedding_layer_from_teacher,
    select_layers,
    trim_vocabulary,
)

__all__ = [
    "copy_layers",
    "copy_weights",
    "embedding_from_teacher",
    "embedding_layer_from_teacher",
    "select_layers",
    "trim_vocabulary",
]
