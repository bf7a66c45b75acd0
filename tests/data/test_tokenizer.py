import collections
import os
import re

import numpy as np
import pytest

from kd_keras.data import WordPieceEncoder
from kd_keras.data.tokenizer import SPECIAL_TOKENS
from kd_keras.data.tokenizer import load_vocabulary
from kd_keras.data.tokenizer import pruned_vocabulary
from kd_keras.errors import DataError

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "film", "good", "##s"]


def test_packs_cls_sep_and_pads_to_length():
    enc = WordPieceEncoder(VOCAB, sequence_length=7)
    ids = enc(["The good films", "zzz", "the " * 20])
    assert ids.dtype == np.int32 and ids.shape == (3, 7)
    assert ids[0].tolist() == [2, 5, 7, 6, 8, 3, 0]
    assert ids[1].tolist() == [2, 1, 3, 0, 0, 0, 0]
    assert ids[2].tolist() == [2, 5, 5, 5, 5, 5, 3]
    assert enc.vocab_size == len(VOCAB)


# An independent WordPiece for printable-ASCII text: lowercase, split on white
# space and ASCII punctuation, then greedy longest-match-first pieces.
_WORDS = re.compile(r"[a-z0-9]+|[!-/:-@\[-`{-~]")


def reference_wordpiece(text, vocab):
    out = []
    for word in _WORDS.findall(text.lower()):
        pieces, start = [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = ("##" if start else "") + word[start:end]
                if piece in vocab:
                    break
            else:
                pieces = ["[UNK]"]
                break
            pieces.append(piece)
            start = end
        out += pieces
    return out


@pytest.fixture(scope="module")
def reviews():
    """MiniLM's vocabulary and 600 printable-ASCII movie-review sentences."""
    from kd_keras.data import load_builtin
    from kd_keras.teachers import minilm_dir

    texts = [t for t in load_builtin("rt_polarity", seed=0).texts["train"]
             if re.fullmatch(r"[ -~]*", t)][:600]
    return load_vocabulary(os.path.join(minilm_dir(), "vocab.txt")), texts


def test_pruned_vocabulary_keeps_what_an_independent_count_keeps(reviews):
    full, texts = reviews
    vocab = set(full)
    counts = collections.Counter(t for text in texts for t in reference_wordpiece(text, vocab))
    for min_count in (1, 2, 3):
        expected = set(SPECIAL_TOKENS) | {t for t, n in counts.items() if n >= min_count}
        for token in set(counts) - {"[UNK]"}:  # Its characters, first and continuing.
            if token.startswith("##"):
                expected |= {"##" + c for c in token[2:]}
            else:
                expected |= {token[0]} | {"##" + c for c in token[1:]}
        pruned = pruned_vocabulary(full, texts, min_count)
        assert pruned == [t for t in full if t in expected]
        assert pruned[:5] == list(SPECIAL_TOKENS)  # [PAD] keeps id 0


def test_a_pruned_vocabulary_splits_the_training_words_without_new_unknowns(reviews):
    """The pipeline's tokenizer on the pruned vocabulary splits as the
    reference does; words whose pieces were all kept split as before, the
    others into shorter pieces; no word becomes [UNK]."""
    full, texts = reviews
    pruned = pruned_vocabulary(full, texts, 3)
    assert len(pruned) < len(full) // 4
    encoder = WordPieceEncoder(pruned, sequence_length=160)
    kept, resplit = set(pruned), 0
    for text, ids in zip(texts, encoder(texts)):
        ours = [pruned[i] for i in ids if i not in (0, 2, 3)]
        assert ours == reference_wordpiece(text, kept)
        before = reference_wordpiece(text, set(full))
        assert ours.count("[UNK]") == before.count("[UNK]")
        assert "".join(t.removeprefix("##") for t in ours) == "".join(
            t.removeprefix("##") for t in before)
        resplit += ours != before
    assert resplit > 100  # the rare words did split differently


def test_pruned_vocabulary_refuses_a_bad_count_and_a_vocabulary_without_specials():
    with pytest.raises(ValueError, match="^min_count: must be an integer of at least 1, got 0"):
        pruned_vocabulary(VOCAB, ["the film"], 0)
    with pytest.raises(DataError, match="no \\[CLS\\] token"):
        pruned_vocabulary(["[PAD]", "[UNK]", "the"], ["the film"], 1)


def test_a_vocab_file_is_read_as_rows_of_tokens_or_refused_in_one_line(tmp_path):
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good"]
    ok = tmp_path / "ok.txt"
    ok.write_bytes(("\r\n".join(tokens) + "\r\n\r\n\n").encode("utf-8-sig"))
    assert load_vocabulary(str(ok)) == tokens  # BOM, CRLF and trailing blank lines
    cases = {
        "twice.txt": ("\n".join(tokens + ["good"]) + "\n",
                      "token 'good' is given twice (lines 6 and 7)"),
        "blank.txt": ("\n".join(tokens[:3] + [""] + tokens[3:]) + "\n", "line 4 is blank"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(DataError, match=re.escape(f"{name}: {message}")):
            load_vocabulary(str(tmp_path / name))
    os.mkfifo(tmp_path / "fifo.txt")  # Never opened: the read would wait forever.
    with pytest.raises(DataError, match=r"fifo.txt: not a regular file \(a FIFO"):
        load_vocabulary(str(tmp_path / "fifo.txt"))
