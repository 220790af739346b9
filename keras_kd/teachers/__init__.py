"""Teacher adapters: wrap a model so it returns `{"logits", "hidden_states", "attentions", "embedding"}`."""

from keras_kd.teachers.base import OUTPUT_KEYS, as_output_dict

__all__ = ["OUTPUT_KEYS", "as_output_dict"]
