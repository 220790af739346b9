"""Reserved keys of a distillation batch's `x` dict: a re-export of `keras_kd.outputs`.

The schema is defined once, in `keras_kd.outputs`; this module keeps `keras_kd.data.keys.*`
imports working.
"""

from keras_kd.outputs import (  # noqa: F401
    RESERVED,
    STUDENT_INPUTS,
    TEACHER_INPUTS,
    TEACHER_OUTPUTS,
    cached_teacher_outputs,
    is_distillation_batch,
    student_view,
    teacher_view,
)
