"""Ship the student: SavedModel (TF Serving, raw-string signatures) and TFLite, with parity checks.

    keras_kd.export.saved_model(student_or_distiller, "saved_models/student")
    keras_kd.export.tflite(student, "student_int8.tflite", quantization="int8", representative_data=x_train[:256])
    keras_kd.export.check_parity(student, "student_int8.tflite", (x_test, y_test))

Only the student is exported: pass a `keras_kd.Distiller` and its `.student` is taken.
"""

from keras_kd.export.parity import (
    TFLiteRunner,
    check_parity,
    compare_exports,
    format_table,
    print_report,
)
from keras_kd.export.saved_model import saved_model, student_model
from keras_kd.export.tflite import QUANTIZATIONS, tflite

__all__ = [
    "QUANTIZATIONS",
    "TFLiteRunner",
    "check_parity",
    "compare_exports",
    "format_table",
    "print_report",
    "saved_model",
    "student_model",
    "tflite",
]
