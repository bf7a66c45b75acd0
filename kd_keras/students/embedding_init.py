"""Starting a student's word embeddings from a teacher's.

A teacher's word-embedding table (`[vocab, teacher_dim]`, 30,522 x 384 for
all-MiniLM-L6-v2) is reduced to the student's embedding width by PCA,
computed in NumPy float64: the rows are centred on their mean and projected
on the top `dim` principal axes (the right singular vectors of the centred
table). Each axis's sign is fixed so that its largest-magnitude coefficient
is positive, which makes the result deterministic. The projection keeps the
teacher's scale (it is not rescaled). To use another projection `P`
(`[teacher_dim, dim]`), pass `embeddings @ P` instead: a table that already
has the student's width is used as it is.

Example:

>>> import numpy as np
>>> table = np.random.default_rng(0).normal(size=(50, 12))
>>> pca_embeddings(table, 4).shape
(50, 4)
"""


import numpy as np

from kd_keras.errors import ConfigError
from kd_keras.errors import KdKerasError
from kd_keras.errors import one_line
from kd_keras.number_checks import is_int
from kd_keras.students.common import option_key


def pca_embeddings(embeddings, dim, argument="embedding_init"):
    """Reduces an embedding table to `dim` columns by PCA (see the module).

    Args:
        embeddings: a `[vocab, teacher_dim]` array.
        dim: the width wanted, at most `min(vocab, teacher_dim)`.
        argument: the builder argument named in errors.

    Returns:
        A float32 `[vocab, dim]` array: the centred rows projected on the top
        `dim` principal axes.

    Raises:
        ConfigError: `embeddings` is not a finite 2-D table, or `dim` is not
            an integer in `[1, min(vocab, teacher_dim)]`.

    Example:

    >>> import numpy as np
    >>> table = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.1], [0.0, -0.1]])
    >>> pca_embeddings(table, 1).ravel().tolist()
    [1.0, -1.0, 0.0, 0.0]
    """
    table = _table(embeddings, argument)
    if not is_int(dim) or not 1 <= dim <= min(table.shape):
        raise ConfigError(
            f"{option_key(argument)}: cannot be reduced to {dim!r} columns by PCA "
            f"(a {table.shape[0]} x {table.shape[1]} table has at most "
            f"{min(table.shape)} principal axes)")
    centred = table - table.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    axes = axes[:dim]
    largest = np.abs(axes).argmax(axis=1)
    axes *= np.sign(axes[np.arange(dim), largest])[:, None]
    return (centred @ axes.T).astype(np.float32)


def initial_embeddings(embedding_init, vocab_size, dim, argument="embedding_init"):
    """The `[vocab_size, dim]` table a student's embedding starts from.

    Args:
        embedding_init: a `[vocab_size, d]` array (used as is when
            `d == dim`, reduced by `pca_embeddings` when `d > dim`), or a
            teacher backbone name (`"minilm"`, a checkpoint folder or a
            KerasHub preset) whose word embeddings are read by
            `teacher_word_embeddings` and reduced the same way.
        vocab_size: the student's vocabulary size.
        dim: the student's embedding width.
        argument: the builder argument named in errors.

    Returns:
        A float32 `[vocab_size, dim]` array.

    Raises:
        ConfigError: the table has the wrong number of rows, fewer than `dim`
            columns, or is not a finite 2-D array; a backbone name that cannot
            be read.
        MissingFileError: the name is a MiniLM alias but MiniLM is missing.

    Example:

    >>> import numpy as np
    >>> initial_embeddings(np.ones((5, 3)), 5, 3).dtype
    dtype('float32')
    """
    if isinstance(embedding_init, str):
        try:
            _, embedding_init = teacher_word_embeddings(embedding_init)
        except KdKerasError:
            raise
        except (OSError, ValueError) as e:
            raise ConfigError(
                f"{option_key(argument)}: cannot read word embeddings from "
                f"{embedding_init!r}: {one_line(e)}") from None
    table = _table(embedding_init, argument)
    if table.shape[0] != vocab_size:
        raise ConfigError(
            f"{option_key(argument)}: has {table.shape[0]} rows but the vocabulary "
            f"has {vocab_size} tokens (shape {table.shape}, expected [{vocab_size}, >= {dim}])")
    if table.shape[1] < dim:
        raise ConfigError(
            f"{option_key(argument)}: has {table.shape[1]} columns, fewer than the "
            f"embedding width {dim} (shape {table.shape}, expected [{vocab_size}, >= {dim}])")
    if table.shape[1] == dim:
        return table.astype(np.float32)
    return pca_embeddings(table, dim, argument)


def teacher_word_embeddings(backbone="all-minilm-l6-v2"):
    """Reads a BERT teacher's word embeddings (all-MiniLM-L6-v2 by default).

    Args:
        backbone: a MiniLM alias (`kd_keras.teachers.MINILM_NAMES`), a local
            Hugging Face BERT checkpoint folder or a KerasHub preset.

    Returns:
        `(vocabulary, embeddings)`: the tokens and a float32
        `[len(vocabulary), hidden_dim]` array, row `i` for token `i`.

    Raises:
        MissingFileError: the alias names MiniLM but its package is missing.

    Example:

    >>> vocab, table = teacher_word_embeddings()    # doctest: +SKIP
    >>> table.shape                                 # doctest: +SKIP
    (30522, 384)
    """
    from kd_keras import teachers

    return teachers.word_embeddings(teachers.resolve_backbone(backbone))


def _table(embeddings, argument):
    try:
        table = np.asarray(embeddings, dtype=np.float64)
    except (TypeError, ValueError):
        table = None
    if table is None or table.ndim != 2 or 0 in table.shape:
        shape = getattr(table, "shape", None)
        raise ConfigError(
            f"{option_key(argument)}: must be a [vocab, dim] array or a teacher "
            f"backbone name, got {type(embeddings).__name__} of shape {shape}")
    if not np.isfinite(table).all():
        raise ConfigError(f"{option_key(argument)}: has non-finite values")
    return table
