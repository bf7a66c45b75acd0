"""An in-graph tokenizer that TFLite can run with the TF-Text custom ops.

KerasHub tokenizers split words with `regex_split`, which has no TFLite
kernel. `FastWordpiecePreprocessor` uses only ops registered by
`tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS` (FastBertNormalize,
FastWordpieceTokenize, RaggedTensorToTensor), so a model exported with it
keeps its tokenizer inside the `.tflite` file. Pass it to
`export_model(..., text=TextExport(preprocessor=..., tflite=True))`.
"""

import keras
import tensorflow as tf

from kd_keras.errors import UsageError


class _IdsPreprocessor(keras.layers.Layer):
    """What both preprocessors hold and serialise: subclasses set
    `vocabulary` and `sequence_length`."""

    def __init__(self, input_name, lowercase, **kwargs):
        super().__init__(trainable=False, **kwargs)
        self.input_name = input_name
        self.lowercase = lowercase

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary": self.vocabulary,
            "sequence_length": self.sequence_length,
            "input_name": self.input_name,
            "lowercase": self.lowercase,
        }


class FastWordpiecePreprocessor(_IdsPreprocessor):
    """Strings to padded WordPiece ids, TFLite-convertible.

    Args:
        vocabulary: a list of tokens, or the path of a `vocab.txt`.
        sequence_length: ids per example (truncated or zero-padded).
        input_name: the model input the ids feed (the output dict's key).
        lowercase: lowercase, NFD-normalise and strip accents (uncased BERT).

    Example:

    >>> pre = FastWordpiecePreprocessor(["[UNK]", "a", "film"], 4)
    >>> pre(tf.constant(["a film"]))["token_ids"].numpy().tolist()
    [[1, 2, 0, 0]]
    """

    def __init__(
        self, vocabulary, sequence_length, input_name="token_ids", lowercase=True, **kwargs
    ):
        super().__init__(input_name, lowercase, **kwargs)
        import tensorflow_text as tf_text

        if isinstance(vocabulary, str):
            with open(vocabulary, encoding="utf-8") as f:
                vocabulary = [line.rstrip("\n") for line in f]
        self.vocabulary = list(vocabulary)
        self.sequence_length = int(sequence_length)
        self._tokenizer = tf_text.FastBertTokenizer(
            self.vocabulary,
            token_out_type=tf.int32,
            lower_case_nfd_strip_accents=lowercase,
        )
        self.built = True

    def call(self, text):
        """Sentences `[batch]` (strings) to `{input_name: ids [batch, sequence_length]}`."""
        ids = self._tokenizer.tokenize(text)
        return {self.input_name: ids.to_tensor(shape=[None, self.sequence_length])}



class WordPiecePreprocessor(_IdsPreprocessor):
    """Strings to the pipeline's packed WordPiece ids, TFLite-convertible.

    The in-graph twin of `kd_keras.data.WordPieceEncoder` (KerasHub's
    `BertTokenizer` and `StartEndPacker`): the same words, case folding,
    `[UNK]`s, `[CLS] ... [SEP]` packing, truncation and padding, built only
    from ops that TFLite runs with the TF-Text custom ops
    (`FastBertNormalize` with a table derived from KerasHub's own splitting
    and folding, see `kd_keras.export.text_normalizer`,
    `WhitespaceTokenize`, `FastWordpieceTokenize`) and builtins. Building it
    derives that table once per process (seconds, not milliseconds).

    Args:
        vocabulary: the `vocab.txt` path or a list of tokens.
        sequence_length: ids per sentence, `[CLS]` and `[SEP]` included.
        input_name: the model input the ids feed.
        lowercase: as `WordPieceEncoder` (uncased vocabularies).

    Example:

    >>> pre = WordPiecePreprocessor(  # doctest: +SKIP
    ...     ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "film"], 6)
    >>> pre(tf.constant(["Good film!"]))["token_ids"].numpy().tolist()  # doctest: +SKIP
    [[2, 5, 6, 1, 3, 0]]
    """

    def __init__(
        self, vocabulary, sequence_length, input_name="token_ids", lowercase=True, **kwargs
    ):
        super().__init__(input_name, lowercase, **kwargs)
        import tensorflow_text as tf_text

        from kd_keras.data import WordPieceEncoder
        from kd_keras.export.text_normalizer import keras_hub_normalizer_model

        if int(sequence_length) < 2:
            raise UsageError(
                f"sequence_length: must be >= 2 ([CLS] and [SEP]), got {sequence_length}"
            )
        encoder = WordPieceEncoder(vocabulary, sequence_length, lowercase=lowercase)
        tokenizer = encoder.tokenizer
        self.vocabulary = encoder.vocabulary
        self.sequence_length = encoder.sequence_length
        self.start_id = int(tokenizer.cls_token_id)
        self.end_id = int(tokenizer.sep_token_id)
        self.pad_id = int(tokenizer.pad_token_id)
        self._normalizer = tf_text.FastBertNormalizer(
            model_buffer=keras_hub_normalizer_model(tokenizer, self.vocabulary)
        )
        self._words = tf_text.WhitespaceTokenizer()
        self._wordpiece = tf_text.FastWordpieceTokenizer(
            vocab=self.vocabulary,
            suffix_indicator=tokenizer.suffix_indicator,
            unknown_token=tokenizer.oov_token,
            no_pretokenization=True,
            token_out_type=tf.int32,
        )
        self.built = True

    def call(self, text):
        """Sentences `[batch]` (strings) to `{input_name: ids [batch, sequence_length]}`."""
        words = self._words.tokenize(self._normalizer.normalize(text))
        ids = self._wordpiece.tokenize(words).merge_dims(-2, -1)
        room = self.sequence_length - 2
        body = ids.to_tensor(default_value=self.pad_id, shape=[None, room])
        used = tf.cast(tf.minimum(ids.row_lengths(), room), tf.int32)
        batch = tf.shape(body)[0]
        packed = tf.concat(
            [tf.fill([batch, 1], self.start_id), body, tf.fill([batch, 1], self.pad_id)],
            axis=1,
        )
        end = tf.one_hot(used + 1, self.sequence_length, dtype=tf.int32)
        return {self.input_name: packed + end * (self.end_id - self.pad_id)}

