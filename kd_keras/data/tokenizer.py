"""WordPiece token ids for text students and BERT-style teachers.

Texts are tokenized once, up front, with KerasHub's `BertTokenizer` (TF-Text
WordPiece) on the teacher's vocabulary, then packed as
`[CLS] tokens... [SEP] 0 0 ...` to a fixed length. Teacher and student read
the same int32 ids, so the student needs no tokenizer of its own at serving
time beyond this function.

`pruned_vocabulary` makes a smaller WordPiece vocabulary from the tokens a
set of texts uses (`student.tokenizer_min_count`): a student trained on its
ids ships a smaller `vocab.txt` and word table (MediaPipe's file carries
both), and a word whose pieces were dropped splits into shorter ones.
"""

import os

import numpy as np

from kd_keras.data.text_lines import read_lines
from kd_keras.errors import DataError
from kd_keras.files.atomic import atomic_path
from kd_keras.number_checks import is_int

TOKENIZER_MIN_COUNT_KEY = "student.tokenizer_min_count"
CONTINUATION = "##"
"""WordPiece's prefix of a piece that continues a word."""

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
        DataError: naming the file: it is a folder, a FIFO or device, binary,
            not UTF-8, or it gives a token twice or an empty one (a token's
            row is its id, so none can be dropped).
    """
    tokens = read_lines(path, "WordPiece tokens (a vocab.txt)")
    if any("\x00" in token for token in tokens):
        raise DataError(f"{path}: not a vocab.txt: a binary file (it holds NUL bytes); "
                        "expected one token a line")
    while tokens and not tokens[-1]:  # Blank lines at the end are no tokens.
        tokens.pop()
    rows = {}
    for row, token in enumerate(tokens):
        if not token.strip():
            raise DataError(f"{path}: line {row + 1} is blank; a vocab.txt gives one token a "
                            "line (its id is its row)")
        if token in rows:
            raise DataError(f"{path}: token {token!r} is given twice (lines {rows[token] + 1} "
                            f"and {row + 1}); a vocab.txt gives each token once")
        rows[token] = row
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
        self._flat_tokens = tf.function(
            lambda texts: self.tokenizer(texts).flat_values,
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

    def token_counts(self, texts, batch_size=2048):
        """How often each token occurs in `texts`, unpacked and untruncated.

        Args:
            texts: a sequence of strings.
            batch_size: texts per tokenizer call.

        Returns:
            An int64 array `[vocab_size]`: entry `i` counts token `i`.

        Example:

        >>> enc = WordPieceEncoder(["[PAD]", "[UNK]", "[CLS]", "[SEP]",
        ...                         "[MASK]", "good", "film"], sequence_length=4)
        >>> enc.token_counts(["good good film", "bad"]).tolist()
        [0, 1, 0, 0, 0, 2, 1]
        """
        import tensorflow as tf

        counts = np.zeros(self.vocab_size, np.int64)
        for start in range(0, len(texts), batch_size):
            chunk = tf.constant([str(t) for t in texts[start : start + batch_size]], tf.string)
            ids = np.asarray(self._flat_tokens(chunk), np.int64)
            counts += np.bincount(ids, minlength=self.vocab_size)
        return counts


def pruned_vocabulary(vocabulary, texts, min_count, lowercase=True):
    """The WordPiece vocabulary of the tokens `texts` use at least `min_count` times.

    `texts` are tokenized with `vocabulary` (unpacked, untruncated). Kept,
    in `vocabulary`'s order (so BERT's `[PAD]` keeps id 0):

    - the special tokens (`SPECIAL_TOKENS`);
    - every token used at least `min_count` times;
    - the single characters that the used tokens are made of, as a word's
      first piece (the first character of a first piece) or as a `##`
      continuation (every other character), where `vocabulary` has them.

    WordPiece splits greedily, longest piece first, so a word whose pieces
    are all kept splits as before, and a word that lost a piece splits into
    shorter kept pieces, down to single characters: a word of `texts` is
    `[UNK]` with the pruned vocabulary exactly when it was with `vocabulary`.
    A new word may be `[UNK]` where it was not, if it holds a character that
    `texts` never used.

    Args:
        vocabulary: the full vocabulary: a `vocab.txt` path or a list of tokens.
        texts: the texts to count tokens in (the student's training texts).
        min_count: how often a token must occur to be kept (at least 1).
        lowercase: as `WordPieceEncoder`'s (uncased BERT vocabularies).

    Returns:
        The kept tokens, a list of strings (`write_vocabulary` saves it).

    Raises:
        DataError: `vocabulary` lacks a special token.

    Example:

    >>> full = ["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the",
    ...         "film", "films", "t", "f", "##h", "##e", "##i", "##l", "##m", "##s"]
    >>> pruned = pruned_vocabulary(full, ["the film", "the films"], min_count=2)
    >>> pruned[5:]
    ['the', 't', 'f', '##h', '##e', '##i', '##l', '##m', '##s']
    >>> WordPieceEncoder(pruned, sequence_length=9)(["the films"]).tolist()
    [[2, 5, 7, 10, 11, 12, 13, 3, 0]]
    """
    if not is_int(min_count) or min_count < 1:
        raise ValueError(f"min_count: must be an integer of at least 1, got {min_count!r}")
    encoder = WordPieceEncoder(vocabulary, sequence_length=2, lowercase=lowercase)
    tokens = encoder.vocabulary
    counts = encoder.token_counts(texts)
    keep = set(SPECIAL_TOKENS)
    keep.update(tokens[i] for i in np.flatnonzero(counts >= min_count))
    for i in np.flatnonzero(counts):
        token = tokens[i]
        if token in SPECIAL_TOKENS:
            continue
        if token.startswith(CONTINUATION):
            rest = token[len(CONTINUATION):]
        else:
            keep.add(token[0])
            rest = token[1:]
        keep.update(CONTINUATION + c for c in rest)
    return [t for t in tokens if t in keep]


def write_vocabulary(tokens, path):
    """Writes `tokens` as a `vocab.txt` (UTF-8, one token a line), atomically.

    Args:
        tokens: the list of tokens (`pruned_vocabulary`'s).
        path: the file to write; its folder is created if missing.

    Returns:
        `path`.

    Example:

    >>> import tempfile
    >>> path = write_vocabulary(["[PAD]", "good"], os.path.join(tempfile.mkdtemp(), "v.txt"))
    >>> load_vocabulary(path)
    ['[PAD]', 'good']
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(f"{t}\n" for t in tokens)
    return path
