"""`tiny_bert`: a small KerasHub BERT on the teacher's WordPiece ids, with
optional factorised (ALBERT-style) embeddings started from the teacher's."""

import keras

from kd_keras.errors import ConfigError
from kd_keras.students.common import check_int
from kd_keras.students.common import check_rate
from kd_keras.students.common import check_text_arguments
from kd_keras.students.common import features_layer
from kd_keras.students.common import option_key
from kd_keras.students.common import plain_numbers
from kd_keras.students.common import token_ids_input
from kd_keras.students.embedding_init import initial_embeddings


def _check_arguments(num_classes, vocab_size, sequence_length, num_layers, num_heads,
                     hidden_dim, intermediate_dim, embedding_dim, dropout):
    check_text_arguments(num_classes, vocab_size, sequence_length)
    for argument, value in (("num_layers", num_layers), ("num_heads", num_heads),
                            ("hidden_dim", hidden_dim),
                            ("intermediate_dim", intermediate_dim)):
        check_int(argument, value)
    if hidden_dim % num_heads:
        raise ConfigError(f"{option_key('hidden_dim')}: must be divisible by num_heads "
                          f"({num_heads}), got {hidden_dim}")
    if embedding_dim is not None:
        check_int("embedding_dim", embedding_dim)
        if embedding_dim > hidden_dim:
            raise ConfigError(f"{option_key('embedding_dim')}: must be at most hidden_dim "
                              f"({hidden_dim}), got {embedding_dim}")
    check_rate("dropout", dropout)


def _backbone(keras_hub, vocab_size, sequence_length, num_layers, num_heads, hidden_dim,
              intermediate_dim, embedding_dim, dropout, name):
    if embedding_dim is None:
        return keras_hub.models.BertBackbone(
            vocabulary_size=vocab_size, num_layers=num_layers, num_heads=num_heads,
            hidden_dim=hidden_dim, intermediate_dim=intermediate_dim, dropout=dropout,
            max_sequence_length=sequence_length, name=f"{name}_backbone")
    # One group per layer: factorised embeddings, no cross-layer sharing.
    return keras_hub.models.AlbertBackbone(
        vocabulary_size=vocab_size, num_layers=num_layers, num_heads=num_heads,
        embedding_dim=embedding_dim, hidden_dim=hidden_dim,
        intermediate_dim=intermediate_dim, num_groups=num_layers,
        num_inner_repetitions=1, dropout=dropout, max_sequence_length=sequence_length,
        name=f"{name}_backbone")


@plain_numbers
def tiny_bert(
    num_classes,
    vocab_size=30522,
    sequence_length=48,
    num_layers=2,
    num_heads=2,
    hidden_dim=128,
    intermediate_dim=256,
    dropout=0.1,
    embedding_dim=None,
    embedding_init=None,
    name="tiny_bert",
):
    """Builds a small KerasHub BERT (or ALBERT-style) backbone with a logits head.

    With `embedding_dim=None` the backbone is a `keras_hub.models.
    BertBackbone` whose word embeddings have the hidden width. With an
    `embedding_dim`, it is a `keras_hub.models.AlbertBackbone` with one group
    per layer (no weight sharing): the word, position and segment embeddings
    have width `embedding_dim` and a dense `embedding_projection` maps them
    up to `hidden_dim`. The word table then costs `vocab_size x
    embedding_dim` instead of `vocab_size x hidden_dim`; with the MiniLM
    vocabulary, `embedding_dim=32` gives 1,264,322 parameters for 2
    classes, 18x fewer than MiniLM's 22,713,216.

    `embedding_init` starts the word table from a teacher's, reduced to the
    table's width by PCA in NumPy (`kd_keras.students.embedding_init`):
    centred rows on the top principal axes, not rescaled; a table that
    already has the width is used as it is (apply your own projection that
    way).

    The backbone uses KerasHub's approximate (tanh) GELU, which TFLite and
    ONNX run natively. The padding mask is derived from the ids (id 0 is
    `[PAD]`), so the model takes the same single int32 input as the other
    text students.

    Layers a feature-distillation term can name:

    - `"features"`: the pooled `[batch, hidden_dim]` output (tanh dense on
      the first token) that feeds the classifier.
    - `"{name}_backbone"`: the backbone; inside it, the transformer blocks
      `transformer_layer_{i}` (BERT) or `group_{i}_inner_layer_0`
      (factorised), each giving `[batch, sequence_length, hidden_dim]`
      hidden states, and `token_embedding`.

    Args:
        num_classes: number of output logits.
        vocab_size: size of the WordPiece vocabulary (the teacher's).
        sequence_length: length of the int32 id sequences.
        num_layers: the number of transformer layers.
        num_heads: attention heads per layer; they divide `hidden_dim`.
        hidden_dim: the width of the hidden states.
        intermediate_dim: the width of each layer's feed-forward part.
        dropout: dropout inside the backbone and before the head.
        embedding_dim: width of the factorised word embeddings (at most
            `hidden_dim`), or `None` for BERT's unfactorised ones.
        embedding_init: `None` (random), a `[vocab_size, d]` array with
            `d >= ` the table's width (`embedding_dim`, else `hidden_dim`), or
            a teacher backbone name (`"minilm"`, a checkpoint folder or a
            KerasHub preset) whose word embeddings are read.
        name: the model's name.

    Returns:
        A `keras.Model` mapping int32 ids to `[batch, num_classes]` logits.

    Raises:
        ConfigError: a bad argument, named as `student.options.<argument>`.

    Example:

    >>> import numpy as np
    >>> m = tiny_bert(2, vocab_size=100, sequence_length=8, hidden_dim=16,
    ...               intermediate_dim=32, embedding_dim=4)
    >>> m(np.ones((1, 8), "int32")).shape
    TensorShape([1, 2])
    >>> m.get_layer("features").output.shape
    (None, 16)
    """
    _check_arguments(num_classes, vocab_size, sequence_length, num_layers, num_heads,
                     hidden_dim, intermediate_dim, embedding_dim, dropout)
    table = None
    if embedding_init is not None:
        width = hidden_dim if embedding_dim is None else embedding_dim
        table = initial_embeddings(embedding_init, vocab_size, width)

    import keras_hub

    backbone = _backbone(keras_hub, vocab_size, sequence_length, num_layers, num_heads,
                         hidden_dim, intermediate_dim, embedding_dim, dropout, name)
    if table is not None:
        backbone.token_embedding.embeddings.assign(table)
    ids = token_ids_input(sequence_length)
    padding_mask = keras.ops.cast(keras.ops.not_equal(ids, 0), "int32")
    segment_ids = keras.ops.zeros_like(ids)
    outputs = backbone(
        {"token_ids": ids, "segment_ids": segment_ids, "padding_mask": padding_mask}
    )
    features = features_layer()(outputs["pooled_output"])
    x = keras.layers.Dropout(dropout, name="dropout")(features)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(ids, logits, name=name)
