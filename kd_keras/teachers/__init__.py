"""Teachers: where teacher logits come from.

`load_teacher(source)` loads a teacher from a `keras.Model`, a `.keras` file,
a SavedModel, a KerasHub preset or Hugging Face BERT checkpoint, a
`transformers` model (PyTorch, optional `hf` extra) or an ONNX file.
`as_teacher(obj)` wraps a `keras.Model` (or returns a `Teacher`) for the
cache. `build_text_teacher`, `fit_head` and `fine_tune` adapt a pretrained
text backbone to a task (`TopLayerTuner` fine-tunes its top blocks on
cached activations of the frozen ones); `EnsembleTeacher` combines several teachers.

Heavy optional dependencies (torch, transformers, onnxruntime) are imported
only when a teacher that needs them is built.
"""

from kd_keras.teachers.base import KerasTeacher
from kd_keras.teachers.base import Teacher
from kd_keras.teachers.base import as_teacher
from kd_keras.teachers.base import fingerprint_keras_model
from kd_keras.teachers.bert import BertEncoder
from kd_keras.teachers.bert import MaskedMeanPooling
from kd_keras.teachers.bert import build_bert_classifier
from kd_keras.teachers.bert import load_bert_backbone
from kd_keras.teachers.bert import load_bert_teacher
from kd_keras.teachers.ensemble import EnsembleTeacher
from kd_keras.teachers.ensemble import WeightedLogitAverage
from kd_keras.teachers.loading import load_keras_file
from kd_keras.teachers.loading import load_teacher
from kd_keras.teachers.onnx_teacher import OnnxTeacher
from kd_keras.teachers.saved_model import SavedModelTeacher
from kd_keras.teachers.text import TextTeacher
from kd_keras.teachers.text import build_text_teacher
from kd_keras.teachers.text import word_embeddings
from kd_keras.teachers.top_layers import TopLayerTuner
from kd_keras.teachers.transfer import fine_tune
from kd_keras.teachers.transfer import fit_head
from kd_keras.teachers.transfer import solve_head
from kd_keras.teachers.transfer import text_features
from kd_keras.teachers.transformers_teacher import TransformersTeacher
