"""Text teachers: raw strings in, logits out, tokenized in the graph."""

import dataclasses
import os

import keras
import keras_hub

from kd_keras.data.tokenizer import check_vocabulary
from kd_keras.data.tokenizer import load_vocabulary
from kd_keras.distillation import feature_views
from kd_keras.errors import UsageError
from kd_keras.teachers.bert import load_bert_teacher
from kd_keras.teachers.checkpoints import read_checkpoint_json


@keras.saving.register_keras_serializable(package="kd_keras")
class TextTeacher(keras.Model):
    """A KerasHub text preprocessor followed by a token classifier.

    A subclassed model rather than a functional one so that it saves to and
    loads from `.keras` (with `safe_mode=True`): a functional model would
    call the tokenizer before its vocabulary asset is restored.

    Feature terms and the teacher-output cache read its intermediate
    outputs through `call_with_features` (see `kd_keras.distillation.feature_views`),
    named by their path under the classifier, e.g.
    `"classifier/backbone/transformer_layer_1"` (hidden states `[batch,
    seq, hidden]`), `"classifier/backbone/transformer_layer_0:input"` (the
    embedding output), `"classifier/backbone/transformer_layer_1:attention"`
    (`[batch, heads, seq, seq]`) or `"classifier/pooling"` (`[batch,
    hidden]`); `feature_names()` lists them all.

    Args:
        preprocessor: a KerasHub text classifier preprocessor (strings to
            `token_ids`, `padding_mask`, `segment_ids`).
        classifier: a `keras.Model` from those token dicts to logits (see
            `kd_keras.teachers.bert.build_bert_classifier`).
        **kwargs: `keras.Model` arguments such as `name`.

    Example:

    >>> teacher = build_text_teacher("path/to/minilm", 2)      # doctest: +SKIP
    >>> teacher(tf.constant(["a gem of a film"])).shape         # doctest: +SKIP
    TensorShape([1, 2])
    """

    def __init__(self, preprocessor, classifier, **kwargs):
        super().__init__(**kwargs)
        self.preprocessor = preprocessor
        self.classifier = classifier
        # The classifier's FeatureView and feature names, made when first asked.
        self._view = self._refs = self._names = None

    def tokens(self, text):
        """Returns the classifier's token dict for a `[batch]` string tensor."""
        features = self.preprocessor(text)
        return {
            "token_ids": features["token_ids"],
            "padding_mask": keras.ops.cast(features["padding_mask"], "int32"),
            "segment_ids": features["segment_ids"],
        }

    def call(self, text, training=False):
        return self.classifier(self.tokens(text), training=training)

    def _feature_refs(self):
        """`LayerRef`s of every intermediate output the hook offers: each
        layer's (single-tensor) output, and the input and attention
        probabilities of each attention layer (a transformer layer)."""
        refs = []
        for path, layer in feature_views.layer_paths(self.classifier).items():
            if isinstance(layer, keras.layers.InputLayer):
                continue
            if isinstance(getattr(layer, "output", None), keras.KerasTensor):
                refs.append(feature_views.LayerRef(tuple(path.split("/"))))
            try:
                attention = feature_views.resolve(
                    self.classifier, f"{path}:{feature_views.ATTENTION}", "teacher_layer")
            except UsageError:  # Not an attention layer.
                continue
            refs.append(dataclasses.replace(attention, part=feature_views.INPUT))
            refs.append(attention)
        return refs

    def feature_names(self):
        """The names `call_with_features` returns, in layer order.

        Example:

        >>> build_text_teacher("path/to/minilm", 2).feature_names()[:2]  # doctest: +SKIP
        ['classifier/backbone/token_embedding', 'classifier/backbone/position_embedding']
        """
        if self._names is None:
            prefix = self.classifier.name
            self._refs = self._feature_refs()
            self._names = [f"{prefix}/{ref.key}" for ref in self._refs]
        return list(self._names)

    def call_with_features(self, text, training=False):
        """Returns `(logits, {name: tensor})` from one forward pass.

        The hook `kd_keras.Distiller` (feature terms) and
        `kd_keras.cache.cache_teacher_outputs(features=...)` use: a term
        names one of `feature_names()` as its `teacher_layer`.

        Args:
            text: a `[batch]` string tensor.
            training: passed to the classifier's layers.

        Returns:
            The logits `[batch, num_classes]` and a dict of every
            intermediate output, e.g. `"classifier/pooling"` `[batch,
            hidden]` and `"classifier/backbone/transformer_layer_0"`
            `[batch, sequence_length, hidden]`.
        """
        names = self.feature_names()
        if self._view is None:
            self._view = feature_views.FeatureView(self.classifier, self._refs, "teacher")
        logits, features = self._view(self.tokens(text), training=training)
        return logits, dict(zip(names, features))

    def build(self, input_shape=None):
        # The classifier is built; the preprocessor has no weights.
        self.built = True

    def compute_output_spec(self, text, training=False):
        return keras.KerasTensor(
            (text.shape[0], self.classifier.output.shape[-1]), dtype="float32"
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            preprocessor=keras.saving.serialize_keras_object(self.preprocessor),
            classifier=keras.saving.serialize_keras_object(self.classifier),
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["preprocessor"] = keras.saving.deserialize_keras_object(
            config["preprocessor"]
        )
        config["classifier"] = keras.saving.deserialize_keras_object(
            config["classifier"]
        )
        return cls(**config)


TOKENIZER_NAME = "tokenizer"
"""A fixed name: an automatic one (`bert_tokenizer_1`) is in the teacher's
config, so the same teacher built twice in a process hashed differently and
its cache was refused."""


def _tokenizer(backbone_dir):
    vocab = os.path.join(str(backbone_dir), "vocab.txt")
    if not os.path.isfile(vocab):  # A KerasHub preset carries its own.
        return keras_hub.models.BertTokenizer.from_preset(backbone_dir, name=TOKENIZER_NAME)
    lowercase = True
    config_path = os.path.join(backbone_dir, "tokenizer_config.json")
    if os.path.isfile(config_path):
        lowercase = bool(read_checkpoint_json(config_path).get("do_lower_case", True))
    # Read and checked here (one line naming the file), stripped as KerasHub
    # strips the lines of a vocabulary file it reads itself.
    tokens = [token.rstrip() for token in load_vocabulary(vocab)]
    check_vocabulary(tokens, vocab)
    return keras_hub.models.BertTokenizer(vocabulary=tokens, lowercase=lowercase,
                                          name=TOKENIZER_NAME)


def build_text_teacher(
    backbone_dir, num_classes, sequence_length=64, pooling=None, name="text_teacher"
):
    """Builds a teacher from raw text to logits on a pretrained BERT backbone.

    The model tokenizes in the graph (KerasHub `BertTokenizer` on the
    checkpoint's `vocab.txt`, then `[CLS] ... [SEP]` packing and padding to
    `sequence_length`), runs the backbone, pools (masked mean for
    sentence-transformers checkpoints like all-MiniLM-L6-v2) and applies a
    dense head. A checkpoint without a classification head gets a new,
    untrained one: train it with `kd_keras.teachers.adapt_text_teacher` (the
    one entry point the teachers guide shows) next.

    Args:
        backbone_dir: a local Hugging Face BERT checkpoint directory
            (`config.json`, `model.safetensors`, `vocab.txt`) or a KerasHub
            preset.
        num_classes: number of logits.
        sequence_length: tokens per text, `[CLS]`/`[SEP]` included.
        pooling: `"mean"`, `"cls"` or `"pooled"`; default: the checkpoint's.
        name: the model's name.

    Returns:
        A `TextTeacher`: a `keras.Model` taking a `[batch]` string tensor and
        returning `[batch, num_classes]` float32 logits. `teacher.classifier`
        has the layers `backbone`, `pooling` and `head`.

    Example:

    >>> teacher = build_text_teacher("path/to/minilm", num_classes=2,
    ...                              sequence_length=32)        # doctest: +SKIP
    """
    if sequence_length < 3:
        raise UsageError(f"sequence_length: must be at least 3, got {sequence_length}")
    classifier = load_bert_teacher(backbone_dir, num_classes=num_classes, pooling=pooling)
    classifier.name = "classifier"
    positions = getattr(classifier.get_layer("backbone"), "max_sequence_length", None)
    if positions is not None and sequence_length > positions:
        raise UsageError(
            f"sequence_length: {sequence_length} is more than the {positions} positions "
            f"the checkpoint {backbone_dir} was trained for")
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        _tokenizer(backbone_dir), sequence_length=sequence_length, name="preprocessor"
    )
    teacher = TextTeacher(preprocessor, classifier, name=name)
    teacher.build()
    return teacher


def word_embeddings(backbone_dir):
    """The input word embeddings of a BERT checkpoint and their tokens.

    Args:
        backbone_dir: a local Hugging Face BERT checkpoint directory or a
            KerasHub preset (the same sources as `build_text_teacher`).

    Returns:
        `(vocabulary, embeddings)`: the list of tokens and a float32
        `[len(vocabulary), hidden_dim]` array, row `i` for token `i`.

    Example:

    >>> vocab, emb = word_embeddings("path/to/minilm")    # doctest: +SKIP
    >>> emb.shape                                           # doctest: +SKIP
    (30522, 384)
    """
    backbone = keras_hub.models.BertBackbone.from_preset(str(backbone_dir))
    embeddings = keras.ops.convert_to_numpy(backbone.token_embedding.embeddings)
    vocabulary = list(_tokenizer(backbone_dir).get_vocabulary())
    if len(vocabulary) != len(embeddings):
        raise UsageError(
            f"{backbone_dir}: {len(vocabulary)} tokens but {len(embeddings)} embedding rows")
    return vocabulary, embeddings.astype("float32")
