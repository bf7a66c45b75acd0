import numpy as np
import pytest

from kd_keras.data import TextDataset
from kd_keras.data import augment_texts
from kd_keras.data import with_augmented_train

TEXTS = ["a truly great film with a warm heart", "dull", "the plot is a mess , sadly"]


def test_copies_are_subsequences_of_their_text_and_seeded():
    out = augment_texts(TEXTS, copies=40, seed=3)
    assert len(out) == 120
    assert out == augment_texts(TEXTS, copies=40, seed=3)
    assert out != augment_texts(TEXTS, copies=40, seed=4)
    for i, copy in enumerate(out):
        source = TEXTS[i % len(TEXTS)].split()
        words = copy.split()
        assert words  # never empty
        it = iter(source)  # an ordered subsequence of the source's words
        assert all(w in it for w in words)
    assert out[1::3] == ["dull"] * 40  # one word: nothing to drop


def test_rates_match_the_options():
    text = " ".join(f"w{i}" for i in range(20))
    dropped = augment_texts([text], copies=2000, word_dropout=0.2, ngram_prob=0.0, seed=0)
    kept = np.mean([len(t.split()) for t in dropped]) / 20
    assert abs(kept - 0.8) < 0.01
    grams = augment_texts([text], copies=2000, word_dropout=0.0, ngram_prob=0.5,
                          max_ngram=3, seed=0)
    short = [t for t in grams if len(t.split()) <= 3]
    assert abs(len(short) / 2000 - 0.5) < 0.04
    for t in short:  # contiguous n-grams
        first = int(t.split()[0][1:])
        assert t == " ".join(f"w{first + j}" for j in range(len(t.split())))


@pytest.mark.parametrize("kwargs, message", [
    ({"word_dropout": 1.0}, "word_dropout must be in"),
    ({"ngram_prob": -0.1}, "ngram_prob must be in"),
    ({"copies": -1}, "copies must be >= 0"),
])
def test_bad_options_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        augment_texts(TEXTS, **kwargs)


def test_augmented_train_split_is_unlabeled():
    data = TextDataset(
        texts={"train": TEXTS, "validation": ["ok"], "test": ["fine"]},
        labels={"train": np.array([1, 0, 0], "int32"), "validation": np.array([1], "int32"),
                "test": np.array([1], "int32")},
        label_names=["neg", "pos"])
    out = with_augmented_train(data, copies=2, seed=0)
    assert out.sizes() == {"train": 9, "validation": 1, "test": 1}
    assert out.texts["train"][:3] == TEXTS
    np.testing.assert_array_equal(out.labels["train"], [1, 0, 0] + [-1] * 6)
    assert out.labels["train"].dtype == np.int32
    assert data.sizes()["train"] == 3  # the original is unchanged
