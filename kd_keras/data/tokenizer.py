"""WordPiece token ids for text students and BERT-style teachers.

Texts are tokenized once, up front, with KerasHub's `BertTokenizer` (TF-Text
WordPiece) on the teacher's vocabulary, then packed as
`[CLS] tokens... [SEP] 0 0 ...` to a fixed length. Teacher and student read
the same int32 ids, so the student needs no tokenizer of its own at serving
time beyond this function.
"""

import numpy as np

from kd_keras.errors import DataError
from kd_keras.errors import MissingFileError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
"""The tokens a BERT WordPiece vocabulary must hold (KerasHub's
`BertTokenizer` packs and pads with them)."""


def load_vocabulary(path):
    """Reads a WordPiece `vocab.txt` (UTF-8 text, one token a line).

    Args:
        path: the file.

    Returns:
        The tokens, a list of strings (row `i` is token `i`).

    Raises:
        MissingFileError: no such file.
        DataError: naming the file: it is a folder, binary or not UTF-8.
    """
    try:
        with open(path, encoding="utf-8") as f:
            tokens = [line.rstrip("\n") for line in f]
    except FileNotFoundError:
        raise MissingFileError(f"{path}: no such vocabulary file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a vocab.txt") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not a vocab.txt: not UTF-8 text (byte 0x{e.object[e.start]:02x} "
                        f"at offset {e.start}); expected one token a line") from None
    if any("\x00" in token for token in tokens):
        raise DataError(f"{path}: not a vocab.txt: a binary file (it holds NUL bytes); "
                        "expected one token a line")
    return tokens


def check_vocabulary(tokens, source):
    """Refuses a vocabulary without BERT's special tokens.

    Args:
        tokens: the list of tokens.
        source: what to name in the message (the file, or "vocabulary").

    Raises:
        DataError: naming `source` and the first missing token.

    Example:

    >>> check_vocabulary(["[PAD]", "good"], "vocab.txt")
    Traceback (most recent call last):
    ...
    kd_keras.errors.DataError: vocab.txt: not a BERT WordPiece vocabulary: no [UNK] token (it needs [PAD], [UNK], [CLS], [SEP], [MASK])
    """
    present = set(tokens)
    missing = [t for t in SPECIAL_TOKENS if t not in present]
    if missing:
        raise DataError(f"{source}: not a BERT WordPiece vocabulary: no {missing[0]} token "
                        f"(it needs {', '.join(SPECIAL_TOKENS)})")


class WordPieceEncoder:
    """Texts -> fixed-length int32 WordPiece ids (`[CLS] ... [SEP]`, 0-padded).

    Args:
        vocabulary: path of a `vocab.txt` or a list of tokens.
        sequence_length: the packed length, including `[CLS]` and `[SEP]`.
        lowercase: lowercase before tokenizing (uncased BERT vocabularies).

    Example:

    >>> enc = WordPieceEncoder(["[PAD]", "[UNK]", "[CLS]", "[SEP]",
    ...                         "[MASK]", "good", "film"], sequence_length=6)
    >>> enc(["good film"]).tolist()
    [[2, 5, 6, 3, 0, 0]]
    """

    def __init__(self, vocabulary, sequence_length=64, lowercase=True):
        import keras_hub

        source = "vocabulary"
        if isinstance(vocabulary, str):
            source, vocabulary = vocabulary, load_vocabulary(vocabulary)
        self.vocabulary = list(vocabulary)
        check_vocabulary(self.vocabulary, source)
        self.sequence_length = int(sequence_length)
        self.tokenizer = keras_hub.tokenizers.BertTokenizer(
            vocabulary=self.vocabulary, lowercase=lowercase
        )
        self.packer = keras_hub.layers.StartEndPacker(
            sequence_length=self.sequence_length,
            start_value=self.tokenizer.cls_token_id,
            end_value=self.tokenizer.sep_token_id,
            pad_value=self.tokenizer.pad_token_id,
            return_padding_mask=False,
        )

        import tensorflow as tf

        self._encode = tf.function(
            lambda texts: self.packer(self.tokenizer(texts)),
            input_signature=[tf.TensorSpec([None], tf.string)],
        )

    @property
    def vocab_size(self):
        return len(self.vocabulary)

    def __call__(self, texts, batch_size=2048):
        """Returns int32 ids of shape `[len(texts), sequence_length]`."""
        import tensorflow as tf

        out = []
        for start in range(0, len(texts), batch_size):
            chunk = tf.constant(list(texts[start : start + batch_size]), tf.string)
            out.append(np.asarray(self._encode(chunk), np.int32))
        if not out:
            return np.zeros((0, self.sequence_length), np.int32)
        return np.concatenate(out)
