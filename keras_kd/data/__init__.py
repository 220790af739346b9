"""Data for distillation: batch keys, cached teacher outputs, text pipelines, real offline datasets."""

from keras_kd.data import keys
from keras_kd.data.keys import STUDENT_INPUTS, TEACHER_INPUTS, TEACHER_OUTPUTS

__all__ = ["keys", "STUDENT_INPUTS", "TEACHER_INPUTS", "TEACHER_OUTPUTS"]
