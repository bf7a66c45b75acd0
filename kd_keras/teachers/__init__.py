"""Teachers: where teacher logits come from.

`as_teacher(obj)` turns a `keras.Model` (or an existing `Teacher`) into the
`Teacher` interface used by the cache. Loaders for other sources (files,
SavedModels, KerasHub / Hugging Face checkpoints, ONNX) live in sibling
modules and are re-exported here.
"""

from kd_keras.teachers.base import KerasTeacher
from kd_keras.teachers.base import Teacher
from kd_keras.teachers.base import as_teacher
from kd_keras.teachers.base import fingerprint_keras_model
