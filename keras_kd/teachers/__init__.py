"""Teacher adapters: wrap a model so it returns `{"logits", "hidden_states", "attentions", "embedding"}`.

| adapter | wraps |
|---|---|
| `KerasTeacher(model, outputs=...)` | any Keras model; intermediate layers by name |
| `KerasHubTeacher.from_preset(path)` | keras-hub text backbones (BERT, ...), with their preprocessor |
| `TransformersTeacher.from_pretrained(path)` | Hugging Face `transformers` 4.x TF models (`[hf]` extra) |
| `SavedModelTeacher(path, signature=...)` | any TensorFlow SavedModel signature |
| `PrecomputedTeacher.from_file(path)` | logits computed elsewhere for fixed texts (`save_precomputed_outputs`) |

`fine_tune_head` trains a classification head on a backbone teacher; `mean_log_probabilities`
combines several teachers' logits into one ensemble target.
"""

from keras_kd.teachers.base import (
    OUTPUT_KEYS,
    TeacherAdapter,
    as_output_dict,
    mean_log_probabilities,
)
from keras_kd.teachers.finetune import fine_tune_head
from keras_kd.teachers.keras_hub import KerasHubTeacher
from keras_kd.teachers.keras_model import KerasTeacher
from keras_kd.teachers.precomputed import PrecomputedTeacher, save_precomputed_outputs
from keras_kd.teachers.saved_model import SavedModelTeacher
from keras_kd.teachers.transformers_tf import TransformersTeacher

__all__ = [
    "OUTPUT_KEYS",
    "KerasHubTeacher",
    "KerasTeacher",
    "PrecomputedTeacher",
    "SavedModelTeacher",
    "TeacherAdapter",
    "TransformersTeacher",
    "as_output_dict",
    "fine_tune_head",
    "mean_log_probabilities",
    "save_precomputed_outputs",
]
