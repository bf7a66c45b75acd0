import numpy as np

from kd_keras.data import WordPieceEncoder

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "film", "good", "##s"]


def test_packs_cls_sep_and_pads_to_length():
    enc = WordPieceEncoder(VOCAB, sequence_length=7)
    ids = enc(["The good films", "zzz", "the " * 20])
    assert ids.dtype == np.int32 and ids.shape == (3, 7)
    assert ids[0].tolist() == [2, 5, 7, 6, 8, 3, 0]
    assert ids[1].tolist() == [2, 1, 3, 0, 0, 0, 0]
    assert ids[2].tolist() == [2, 5, 5, 5, 5, 5, 3]
    assert enc.vocab_size == len(VOCAB)
