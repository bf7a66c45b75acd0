"""`tiny_bert`: a small KerasHub BERT on the teacher's WordPiece ids."""

import keras

from kd_keras.students.common import token_ids_input


def tiny_bert(
    num_classes,
    vocab_size=30522,
    sequence_length=48,
    num_layers=2,
    num_heads=2,
    hidden_dim=128,
    intermediate_dim=256,
    dropout=0.1,
    name="tiny_bert",
):
    """Builds a small `keras_hub.models.BertBackbone` with a logits head.

    The backbone uses KerasHub's approximate (tanh) GELU, which TFLite and
    ONNX run natively. The padding mask is derived from the ids (id 0 is
    `[PAD]`), so the model takes the same single int32 input as the other
    text students.

    Args:
        num_classes: number of output logits.
        vocab_size: size of the WordPiece vocabulary (the teacher's).
        sequence_length: length of the int32 id sequences.
        num_layers, num_heads, hidden_dim, intermediate_dim: the BERT size.
        dropout: dropout inside the backbone and before the head.
        name: the model's name.

    Returns:
        A `keras.Model` mapping int32 ids to `[batch, num_classes]` logits.

    Example:

    >>> import numpy as np
    >>> m = tiny_bert(2, vocab_size=100, sequence_length=8, hidden_dim=16,
    ...               intermediate_dim=32)
    >>> m(np.ones((1, 8), "int32")).shape
    TensorShape([1, 2])
    """
    import keras_hub

    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=vocab_size,
        num_layers=num_layers,
        num_heads=num_heads,
        hidden_dim=hidden_dim,
        intermediate_dim=intermediate_dim,
        dropout=dropout,
        max_sequence_length=sequence_length,
        name=f"{name}_backbone",
    )
    ids = token_ids_input(sequence_length)
    padding_mask = keras.ops.cast(keras.ops.not_equal(ids, 0), "int32")
    segment_ids = keras.ops.zeros_like(ids)
    outputs = backbone(
        {"token_ids": ids, "segment_ids": segment_ids, "padding_mask": padding_mask}
    )
    x = keras.layers.Dropout(dropout, name="dropout")(outputs["pooled_output"])
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(ids, logits, name=name)
