"""Teachers: where teacher logits come from.

`load_teacher(source)` loads a teacher from a `keras.Model`, a `.keras` file,
a SavedModel, a KerasHub preset or Hugging Face BERT checkpoint, a
`transformers` model (PyTorch, optional `hf` extra) or an ONNX file.
`as_teacher(obj)` wraps a `keras.Model` (or returns a `Teacher`) for the
cache; `input_specs(teacher)` lists the inputs it declares.
`build_text_teacher` builds a text teacher on a pretrained backbone
(`resolve_backbone` maps the MiniLM aliases to its checkpoint) and
`adapt_text_teacher` adapts it to a task, as an `Adaptation` says: an exact
head on frozen features, the top blocks (`TopLayerTuner`) or the whole
backbone; `fine_tune` and `fit_head` are shortcuts to the same code.
`EnsembleTeacher` combines several teachers. `minilm_dir` finds the local
MiniLM checkpoint and `word_embeddings` reads a checkpoint's vocabulary rows.

The concrete teacher classes, the BERT layers and the exact head solver stay
in their own modules (for example `kd_keras.teachers.bert.MaskedMeanPooling`).

Heavy optional dependencies (torch, transformers, onnxruntime) are imported
only when a teacher that needs them is built.
"""

from kd_keras.teachers.adaptation import Adaptation
from kd_keras.teachers.adaptation import AdaptedTeacher
from kd_keras.teachers.adaptation import adapt_text_teacher
from kd_keras.teachers.adaptation import fine_tune
from kd_keras.teachers.base import Teacher
from kd_keras.teachers.base import as_teacher
from kd_keras.teachers.checkpoints import MINILM_NAMES
from kd_keras.teachers.checkpoints import minilm_dir
from kd_keras.teachers.checkpoints import resolve_backbone
from kd_keras.teachers.ensemble import EnsembleTeacher
from kd_keras.teachers.loading import input_specs
from kd_keras.teachers.loading import load_teacher
from kd_keras.teachers.text import TextTeacher
from kd_keras.teachers.text import build_text_teacher
from kd_keras.teachers.text import word_embeddings
from kd_keras.teachers.top_layers import TopLayerTuner
from kd_keras.teachers.transfer import fit_head

__all__ = [
    "Adaptation",
    "AdaptedTeacher",
    "EnsembleTeacher",
    "MINILM_NAMES",
    "Teacher",
    "TextTeacher",
    "TopLayerTuner",
    "adapt_text_teacher",
    "as_teacher",
    "build_text_teacher",
    "fine_tune",
    "fit_head",
    "input_specs",
    "load_teacher",
    "minilm_dir",
    "resolve_backbone",
    "word_embeddings",
]
