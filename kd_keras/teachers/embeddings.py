"""Sentence embeddings of a text teacher's frozen backbone, optionally
cached on disk.

A head on a frozen backbone (and the exact head that starts full
fine-tuning) needs the backbone's pooled output, each text's embedding,
once. `EmbeddingTeacher` exposes the backbone and pooling of a
`TextTeacher` as a `Teacher` whose "logits" are those embeddings, so
`kd_keras.cache` stores them; its fingerprint covers the backbone and
pooling weights and the tokenizer (its vocabulary, options and length) but
not the head, so refitting the head (another seed, another label fraction)
reuses the cached embeddings. (In kd_keras,
"features" are the teacher outputs that `FeatureDistillation` terms
match.)
"""

import hashlib
import os

import keras
import numpy as np

from kd_keras.teachers.base import Teacher
from kd_keras.teachers.base import fingerprint_keras_model
from kd_keras.teachers.base import tokenizer_fingerprint
from kd_keras.teachers.forward import teacher_logits
from kd_keras.teachers.head import as_strings


def _digest(*parts):
    h = hashlib.sha256()
    for part in parts:
        h.update(repr(part).encode("utf-8"))
    return h.hexdigest()[:16]


class EmbeddingTeacher(Teacher):
    """The frozen backbone + pooling of a `TextTeacher` (no head).

    Its `predict_on_batch` maps a batch of strings to pooled features
    `[batch, hidden_dim]` through one traced `tf.function`.

    Args:
        text_teacher: a `TextTeacher` from `build_text_teacher`.

    Example:

    >>> teacher = build_text_teacher("path/to/minilm", 2)   # doctest: +SKIP
    >>> EmbeddingTeacher(teacher).predict_on_batch(["a gem"]).shape  # doctest: +SKIP
    (1, 384)
    """

    in_graph = False

    def __init__(self, text_teacher):
        import tensorflow as tf

        classifier = text_teacher.classifier
        # A fixed name: an automatic one ("functional_3") would change the
        # fingerprint with every teacher built in the process.
        self.embed_tokens = keras.Model(
            classifier.input, classifier.get_layer("pooling").output,
            name="pooled_features")
        self.sequence_length = int(text_teacher.preprocessor.sequence_length)
        self._tokenizer = text_teacher.preprocessor.tokenizer
        self._fn = tf.function(
            lambda text: self.embed_tokens(text_teacher.tokens(text), training=False),
            input_signature=[tf.TensorSpec([None], tf.string)])
        self._fingerprint = None

    def predict_on_batch(self, x):
        import tensorflow as tf

        return np.asarray(self._fn(tf.constant(list(as_strings(x)))), np.float32)

    def fingerprint(self):
        if self._fingerprint is None:
            self._fingerprint = hashlib.sha256(
                (fingerprint_keras_model(self.embed_tokens)
                 + f"/len={self.sequence_length}"
                 + f"/tokenizer={tokenizer_fingerprint(self._tokenizer)}").encode()).hexdigest()
        return self._fingerprint


def backbone_embeddings(teacher, texts, cache_dir=None, batch_size=64, verbose=1):
    """The frozen backbone's embedding of every text, per split, cached on
    disk when asked.

    Args:
        teacher: a `TextTeacher` from `build_text_teacher`.
        texts: mapping split name -> sequence of strings.
        cache_dir: a folder for `kd_keras.cache` caches (one per split,
            named by the backbone's fingerprint and the texts, so a re-run
            reuses them), or `None` to compute without caching.
        batch_size: texts per forward pass.
        verbose: 1 prints the cache folders and progress bars.

    Returns:
        A dict split -> float32 `[n, hidden_dim]` (`n` may be 0).
    """
    embedder = EmbeddingTeacher(teacher)
    hidden = int(embedder.embed_tokens.output.shape[-1])
    features = {}
    for split, split_texts in texts.items():
        strings = as_strings(split_texts)
        if len(strings) == 0:
            features[split] = np.zeros((0, hidden), np.float32)
        elif cache_dir is None:
            features[split] = teacher_logits(
                embedder, strings, batch_size=batch_size,
                desc=f"teacher features [{split}]" if verbose else None)
        else:
            from kd_keras.cache import cache_teacher_outputs

            key = _digest(embedder.fingerprint()[:16], list(strings))
            directory = os.path.join(os.fspath(cache_dir), f"features-{split}-{key}")
            if verbose:
                print(f"teacher features [{split}]: {len(strings)} texts -> {directory}")
            cache = cache_teacher_outputs(embedder, strings, directory,
                                          batch_size=batch_size, verbose=verbose)
            features[split] = np.asarray(cache.logits(), np.float32)
    return features
