"""`dilated_cnn`: a text CNN with a stack of dilated convolutions on top.

The text CNN (`text_cnn`) sees n-grams of at most `max(kernel_sizes)`
tokens and max-pools them over the sentence, so it cannot tell "despite a
powerful portrayal, ... suffers from an overly deliberate pace" from its
parts. Here the parallel n-gram convolutions keep every position
(`padding="same"`) and feed a stack of dilated convolutions (dilation 2,
then 4 by default), whose receptive field grows to
`max(kernel_sizes) + (deep_kernel - 1) * sum(dilations)` tokens (17 at the
defaults, against 5 for the text CNN). Every level is max-pooled over the
sentence, and the pooled vectors together feed the classifier.

`embedding_init` starts the token embedding from a teacher's word
embeddings, reduced to `embedding_dim` by PCA
(`kd_keras.students.embedding_init`), as `tiny_bert` does. The table keeps
the teacher's scale (larger than Keras's default start), and no
normalisation follows the embedding here; pass a rescaled array to change that.
"""

import keras

from kd_keras.students.common import check_cnn_arguments
from kd_keras.students.common import check_int
from kd_keras.students.common import check_ints
from kd_keras.students.common import check_rate
from kd_keras.students.common import features_layer
from kd_keras.students.common import plain_numbers
from kd_keras.students.common import token_ids_input
from kd_keras.students.embedding_init import initial_embeddings


@plain_numbers
def dilated_cnn(
    num_classes,
    vocab_size=30522,
    sequence_length=48,
    embedding_dim=64,
    filters=100,
    kernel_sizes=(3, 4, 5),
    deep_filters=128,
    dilations=(2, 4),
    deep_kernel=3,
    dropout=0.5,
    embedding_init=None,
    name="dilated_cnn",
):
    """Builds the dilated text CNN (see the module).

    embedding -> parallel Conv1D (`kernel_sizes`, same padding) ->
    concatenated -> one Conv1D per entry of `dilations` (`deep_filters`,
    `deep_kernel`, that dilation), each on the previous one's output ->
    every level max-pooled over the positions and concatenated -> logits.
    Only builtin TFLite ops, so it converts to int8 TFLite and ONNX as is.

    Layers a feature-distillation term can name: `"features"`, the pooled
    `[batch, filters * len(kernel_sizes) + deep_filters * len(dilations)]`
    vector that feeds the classifier (before dropout); `"embedding"`, the
    `[batch, sequence_length, embedding_dim]` token embeddings.

    Args:
        num_classes: number of output logits.
        vocab_size: size of the WordPiece vocabulary (ids are `< vocab_size`).
        sequence_length: length of the int32 id sequences.
        embedding_dim: width of the token embedding.
        filters: number of filters per n-gram kernel size.
        kernel_sizes: the n-gram widths of the parallel convolutions.
        deep_filters: number of filters of each dilated convolution.
        dilations: the dilation rate of each stacked convolution, bottom
            first; empty for none (then it is a same-padded text CNN).
        deep_kernel: the kernel width of the dilated convolutions.
        dropout: dropout rate before the output layer.
        embedding_init: `None` (random), a `[vocab_size, d]` array with
            `d >= embedding_dim` (reduced by PCA when wider), or a teacher
            backbone name (`"minilm"`, a checkpoint folder or a KerasHub
            preset) whose word embeddings are read.
        name: the model's name.

    Returns:
        A `keras.Model` mapping int32 `[batch, sequence_length]` ids to
        float32 `[batch, num_classes]` logits.

    Raises:
        ConfigError: a bad argument, named as `student.options.<argument>`
            (a width repeated in `kernel_sizes` too).

    Example:

    >>> import numpy as np
    >>> m = dilated_cnn(2, vocab_size=100, sequence_length=8)
    >>> m(np.ones((3, 8), "int32")).shape
    TensorShape([3, 2])
    >>> m.get_layer("features").output.shape
    (None, 556)
    """
    kernel_sizes = check_cnn_arguments(num_classes, vocab_size, sequence_length,
                                       embedding_dim, filters, kernel_sizes)
    check_int("deep_filters", deep_filters)
    dilations = check_ints("dilations", dilations, allow_empty=True)
    check_int("deep_kernel", deep_kernel)
    check_rate("dropout", dropout)
    table = (None if embedding_init is None
             else initial_embeddings(embedding_init, vocab_size, embedding_dim))
    ids = token_ids_input(sequence_length)
    embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
    x = embedding(ids)
    grams = [keras.layers.Conv1D(filters, k, padding="same", activation="relu",
                                 name=f"conv_{k}")(x) for k in kernel_sizes]
    h = grams[0] if len(grams) == 1 else keras.layers.Concatenate(name="ngrams")(grams)
    pooled = [keras.layers.GlobalMaxPooling1D(name="max_pool_ngrams")(h)]
    for i, rate in enumerate(dilations):
        h = keras.layers.Conv1D(deep_filters, deep_kernel, dilation_rate=rate,
                                padding="same", activation="relu",
                                name=f"dilated_conv_{i}")(h)
        pooled.append(keras.layers.GlobalMaxPooling1D(name=f"max_pool_dilated_{i}")(h))
    x = pooled[0] if len(pooled) == 1 else keras.layers.Concatenate(name="concat")(pooled)
    x = features_layer()(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    if table is not None:
        embedding.embeddings.assign(table)
    return keras.Model(ids, logits, name=name)
