"""An in-graph tokenizer that TFLite can run with the TF-Text custom ops.

KerasHub tokenizers split words with `regex_split`, which has no TFLite
kernel. `FastWordpiecePreprocessor` uses only ops registered by
`tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS` (FastBertNormalize,
FastWordpieceTokenize, RaggedTensorToTensor), so a model exported with it
keeps its tokenizer inside the `.tflite` file. Pass it to
`export_model(..., text_preprocessor=..., tflite_text=True)`.
"""

import keras
import tensorflow as tf


class FastWordpiecePreprocessor(keras.layers.Layer):
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
        super().__init__(trainable=False, **kwargs)
        import tensorflow_text as tf_text

        if isinstance(vocabulary, str):
            with open(vocabulary, encoding="utf-8") as f:
                vocabulary = [line.rstrip("\n") for line in f]
        self.vocabulary = list(vocabulary)
        self.sequence_length = int(sequence_length)
        self.input_name = input_name
        self.lowercase = lowercase
        self._tokenizer = tf_text.FastBertTokenizer(
            self.vocabulary,
            token_out_type=tf.int32,
            lower_case_nfd_strip_accents=lowercase,
        )
        self.built = True

    def call(self, text):
        ids = self._tokenizer.tokenize(text)
        return {self.input_name: ids.to_tensor(shape=[None, self.sequence_length])}

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary": self.vocabulary,
            "sequence_length": self.sequence_length,
            "input_name": self.input_name,
            "lowercase": self.lowercase,
        }
