"""Pieces shared by the built-in students."""

import keras


def token_ids_input(sequence_length, name="token_ids"):
    """The int32 `[batch, sequence_length]` WordPiece-id input of text students."""
    return keras.Input(shape=(sequence_length,), dtype="int32", name=name)
