"""Students: small built-in architectures that output logits.

Every builder has the signature
`(num_classes, vocab_size=..., sequence_length=..., **kwargs) -> keras.Model`
and checks its arguments: a bad one stops it with a one-line `ConfigError`
naming `student.options.<argument>`.

| name          | input                          | notes                          |
|---------------|--------------------------------|--------------------------------|
| `text_cnn`    | int32 WordPiece ids            | Kim-style CNN, ~2M params      |
| `dilated_cnn` | int32 WordPiece ids            | text CNN + dilated conv stack  |
| `bigru`       | int32 WordPiece ids            | unrolled bidirectional GRU     |
| `tiny_bert`   | int32 WordPiece ids            | 2-layer KerasHub BERT; optional|
|               |                                | factorised (ALBERT) embeddings |
| `mlp`         | ids (bag of words) or features | dense layers                   |
| `small_cnn`   | float images                   | 2-D conv blocks                |

Layers that a feature-distillation term can name (`student_layer=`):

- `"features"` in `text_cnn`, `dilated_cnn`, `bigru`, `tiny_bert` and `mlp`
  on ids: the pooled representation that feeds the classifier,
  `[batch, width]` with width `filters * len(kernel_sizes)` (plus
  `deep_filters * len(dilations)` in `dilated_cnn`), `2 * units`,
  `hidden_dim` and the last hidden width respectively.
- `"embedding"` in `text_cnn`, `dilated_cnn`, `bigru` and `mlp` (ids): the
  token embeddings, `[batch, sequence_length, embedding_dim]`.
- `tiny_bert`'s hidden states, `[batch, sequence_length, hidden_dim]`:
  layer `transformer_layer_{i}` inside `"tiny_bert_backbone"`
  (`group_{i}_inner_layer_0` when `embedding_dim` is set).

`"features"` (`FEATURES_LAYER`) is the input of the classifier, before
dropout; it is a weightless `Identity` layer, so it changes neither the
parameter count nor the initial weights. `small_cnn`, and `mlp` on float
inputs, have no `"features"` layer (that `mlp`'s input is named
`"features"`).

`tiny_bert(embedding_dim=..., embedding_init=...)` and
`dilated_cnn(embedding_init=...)` start their word table from a teacher's,
reduced by PCA (`pca_embeddings`, `initial_embeddings`;
`teacher_word_embeddings` reads all-MiniLM-L6-v2's).

`prune_vocabulary(build, used_vocabulary(train_ids, vocab_size))` gives any
id-reading student an embedding row for the ids its training rows use only,
behind a `VocabularyMap` (config: `student.prune_vocabulary: true`).

`build_student("package.module:function", ...)` calls your own builder.
"""

from kd_keras.students.bigru import bigru
from kd_keras.students.common import FEATURES_LAYER
from kd_keras.students.dilated_cnn import dilated_cnn
from kd_keras.students.embedding_init import initial_embeddings
from kd_keras.students.embedding_init import pca_embeddings
from kd_keras.students.embedding_init import teacher_word_embeddings
from kd_keras.students.mlp import mlp
from kd_keras.students.registry import BUILTIN_STUDENTS
from kd_keras.students.registry import build_student
from kd_keras.students.registry import get_student
from kd_keras.students.small_cnn import small_cnn
from kd_keras.students.text_cnn import text_cnn
from kd_keras.students.tiny_bert import tiny_bert
from kd_keras.students.vocabulary import UsedVocabulary
from kd_keras.students.vocabulary import VocabularyMap
from kd_keras.students.vocabulary import prune_vocabulary
from kd_keras.students.vocabulary import used_vocabulary

__all__ = [
    "BUILTIN_STUDENTS",
    "FEATURES_LAYER",
    "UsedVocabulary",
    "VocabularyMap",
    "bigru",
    "build_student",
    "dilated_cnn",
    "get_student",
    "initial_embeddings",
    "mlp",
    "pca_embeddings",
    "prune_vocabulary",
    "small_cnn",
    "teacher_word_embeddings",
    "text_cnn",
    "tiny_bert",
    "used_vocabulary",
]
