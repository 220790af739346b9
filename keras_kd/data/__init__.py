"""Data for distillation: batch keys, cached teacher outputs, text pipelines, real offline datasets.

- `keys`: reserved keys of a distillation batch (`student_inputs`, `teacher_inputs`, `teacher_outputs`);
- `datasets`: real data that pip/apt install (Chinese reviews, Rotten Tomatoes, tweets, MNIST, Fashion-MNIST);
- `text`: tokenizers made of TF ops (WordPiece, bytes, characters) and `make_text_dataset`;
- `cache`: `cache_teacher_outputs` (run the teacher once, reuse its outputs every epoch);
- `augment`: token masking / deletion / swap and teacher-labelled unlabelled text;
- `sources`: your own files (`load_source`: csv, tsv, jsonl, tfrecord, image_folder, tfds, parallel_text);
- `parallel`: English → other-language sentence pairs from installed translation catalogs.
"""

from keras_kd.data import augment, cache, datasets, keys, parallel, sources, text
from keras_kd.data.augment import TokenAugmentation, pseudo_label
from keras_kd.data.cache import (
    cache_teacher_outputs,
    load_cached_teacher_outputs,
    with_teacher_outputs,
)
from keras_kd.data.keys import STUDENT_INPUTS, TEACHER_INPUTS, TEACHER_OUTPUTS
from keras_kd.data.parallel import load_parallel
from keras_kd.data.sources import DataSourceError, SourceData, load_source
from keras_kd.data.text import ByteTokenizer, CharTokenizer, WordPieceTokenizer, make_text_dataset

__all__ = [
    "keys",
    "augment",
    "cache",
    "datasets",
    "parallel",
    "text",
    "STUDENT_INPUTS",
    "TEACHER_INPUTS",
    "TEACHER_OUTPUTS",
    "ByteTokenizer",
    "CharTokenizer",
    "WordPieceTokenizer",
    "make_text_dataset",
    "cache_teacher_outputs",
    "load_cached_teacher_outputs",
    "with_teacher_outputs",
    "TokenAugmentation",
    "pseudo_label",
    "load_parallel",
    "sources",
    "load_source",
    "SourceData",
    "DataSourceError",
]
