import numpy as np
import pytest

from kd_keras.data import TextDataset
from kd_keras.data import augment_texts
from kd_keras.data import with_augmented_train
from kd_keras.data import word_neighbors
from kd_keras.errors import UsageError

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
    ({"word_dropout": 1.0}, r"^word_dropout: must be a number in \[0, 1\), got 1.0$"),
    ({"ngram_prob": -0.1}, r"^ngram_prob: must be a number in"),
    ({"ngram_prob": "x"}, r"^ngram_prob: must be a number in .*got 'x'$"),
    ({"copies": -1}, r"^copies: must be an integer >= 0, got -1$"),
    ({"copies": 1.5}, r"^copies: must be an integer >= 0, got 1.5$"),
    ({"max_ngram": 0}, r"^max_ngram: must be an integer >= 1, got 0$"),
])
def test_bad_options_are_named(kwargs, message):
    with pytest.raises(UsageError, match=message):
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


def test_word_neighbors_match_a_brute_force_cosine_ranking():
    rng = np.random.default_rng(0)
    vocabulary = ["[CLS]", "##ing", "good", "bad", "film", "movie", "dull", "fun", "3d", "plot"]
    embeddings = rng.standard_normal((len(vocabulary), 6))
    out = word_neighbors(vocabulary, embeddings, k=3, chunk=2)
    words = ["good", "bad", "film", "movie", "dull", "fun", "plot"]  # alphabetic only
    assert sorted(out) == sorted(words)
    unit = {w: embeddings[vocabulary.index(w)] / np.linalg.norm(embeddings[vocabulary.index(w)])
            for w in words}
    for w in words:
        ranked = sorted((x for x in words if x != w), key=lambda x: -float(unit[w] @ unit[x]))
        assert out[w] == ranked[:3]
    assert word_neighbors(vocabulary, embeddings, words=["fun", "zebra", "##ing"], k=2) == {
        "fun": out["fun"][:2]}
    with pytest.raises(UsageError, match=r"^embeddings: must be \[len\(vocabulary\), dim\]"):
        word_neighbors(vocabulary, embeddings[:3])


def test_replacement_draws_from_the_neighbours_at_the_given_rate():
    text = " ".join(f"w{i}" for i in range(20))
    neighbors = {f"w{i}": [f"r{i}a", f"r{i}b"] for i in range(10)}  # half the words have some
    out = augment_texts([text], copies=1000, word_dropout=0.0, ngram_prob=0.0,
                        replace_prob=0.3, neighbors=neighbors, seed=0)
    replaced = 0
    for copy in out:
        words = copy.split()
        assert len(words) == 20
        for i, w in enumerate(words):
            assert w == f"w{i}" or (i < 10 and w in neighbors[f"w{i}"])
            replaced += w != f"w{i}"
    assert abs(replaced / (1000 * 10) - 0.3) < 0.02
    # Off, it draws no extra random numbers: the copies are as without it.
    assert augment_texts(TEXTS, copies=5, seed=2, neighbors=neighbors) == augment_texts(
        TEXTS, copies=5, seed=2)
    with pytest.raises(UsageError, match=r"^replace_prob: 0.2 > 0 needs neighbors"):
        augment_texts(TEXTS, replace_prob=0.2)
