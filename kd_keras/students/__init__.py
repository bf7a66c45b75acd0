"""Students: small built-in architectures that output logits.

Every builder has the signature
`(num_classes, vocab_size=..., sequence_length=..., **kwargs) -> keras.Model`.

| name        | input                          | notes                          |
|-------------|--------------------------------|--------------------------------|
| `text_cnn`  | int32 WordPiece ids            | Kim-style CNN, ~2M params      |
| `bigru`     | int32 WordPiece ids            | unrolled bidirectional GRU     |
| `tiny_bert` | int32 WordPiece ids            | 2-layer KerasHub BERT          |
| `mlp`       | ids (bag of words) or features | dense layers                   |
| `small_cnn` | float images                   | 2-D conv blocks                |

`build_student("package.module:function", ...)` calls your own builder.
"""

from kd_keras.students.bigru import bigru
from kd_keras.students.mlp import mlp
from kd_keras.students.registry import BUILTIN_STUDENTS
from kd_keras.students.registry import build_student
from kd_keras.students.registry import get_student
from kd_keras.students.small_cnn import small_cnn
from kd_keras.students.text_cnn import text_cnn
from kd_keras.students.tiny_bert import tiny_bert
