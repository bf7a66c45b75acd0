"""Transfer-set augmentation: new unlabeled texts for the teacher to label.

A student learns from the teacher wherever the teacher can be run, not only
on the labeled examples. With few extra texts at hand, perturbed copies of
the training texts make a transfer set (Tang et al., 2019, "Distilling
Task-Specific Knowledge from BERT into Simple Neural Networks"): each copy
is, with probability `ngram_prob`, a random n-gram of the text, and
otherwise the text with each word dropped with probability `word_dropout`
and each remaining word replaced, with probability `replace_prob`, by one of
its nearest neighbours in the teacher's word-embedding space
(`word_neighbors`; TinyBERT's augmentation, Jiao et al., 2020). Replacement
shows the student words the training texts lack, and neighbours include
antonyms ("good" -> "bad"), which the teacher then labels. The copies carry
no label (`-1`): the teacher's logits on them are the only signal, so a
wrong "label" cannot leak in.
"""

import dataclasses

import numpy as np

from kd_keras.errors import UsageError
from kd_keras.errors import one_line
from kd_keras.number_checks import is_int
from kd_keras.number_checks import is_real


def word_neighbors(vocabulary, embeddings, words=None, k=10, chunk=2048):
    """The `k` nearest whole words of each word, by cosine similarity of
    their embeddings.

    Only whole, alphabetic vocabulary entries take part (WordPiece
    continuations such as `##ing` and special tokens such as `[CLS]` do
    not).

    Args:
        vocabulary: the list of tokens, in embedding-row order.
        embeddings: a `[len(vocabulary), dim]` array.
        words: the words to find neighbours for (default: every candidate).
            Words outside the candidates are left out of the result.
        k: neighbours per word.
        chunk: rows compared at a time (bounds the memory used).

    Returns:
        A dict word -> list of `k` words, nearest first, without the word
        itself.

    Example:

    >>> import numpy as np
    >>> word_neighbors(["good", "great", "bad", "##s"], np.array(
    ...     [[1.0, 0.1], [1.0, 0.2], [-1.0, 0.1], [1.0, 0.15]]), k=1)
    {'good': ['great'], 'great': ['good'], 'bad': ['great']}
    """
    try:
        embeddings = np.asarray(embeddings, np.float32)
    except (TypeError, ValueError) as e:
        raise UsageError(f"embeddings: not a numeric array ({one_line(e)})") from None
    if embeddings.ndim != 2 or len(embeddings) != len(vocabulary):
        raise UsageError(
            f"embeddings: must be [len(vocabulary), dim] = [{len(vocabulary)}, dim], "
            f"got shape {embeddings.shape}")
    _check_int("k", k, 1)
    rows = [i for i, token in enumerate(vocabulary) if token.isalpha()]
    tokens = [vocabulary[i] for i in rows]
    unit = embeddings[rows]
    unit = unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
    position = {token: j for j, token in enumerate(tokens)}
    wanted = tokens if words is None else sorted({w for w in words if w in position})
    k = min(int(k), len(tokens) - 1)
    out = {}
    for start in range(0, len(wanted), chunk):
        block = wanted[start:start + chunk]
        idx = np.array([position[w] for w in block])
        sims = unit[idx] @ unit.T
        sims[np.arange(len(block)), idx] = -np.inf  # never the word itself
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        for r, word in enumerate(block):
            order = top[r][np.argsort(-sims[r, top[r]], kind="stable")]
            out[word] = [tokens[j] for j in order[:k]]
    return out


def augment_texts(texts, copies=1, word_dropout=0.1, ngram_prob=0.25, max_ngram=5,
                  seed=0, replace_prob=0.0, neighbors=None):
    """Makes `copies` perturbed versions of every text.

    Args:
        texts: a sequence of strings.
        copies: versions per text.
        word_dropout: probability of dropping each word (one word is always
            kept).
        ngram_prob: probability that a version is a random n-gram of the
            text instead, `n` uniform in `1 ... max_ngram`.
        max_ngram: the longest sampled n-gram.
        seed: the random seed; the same arguments give the same texts.
        replace_prob: probability of replacing each kept word that has
            neighbours by one of them, drawn uniformly.
        neighbors: a dict word -> list of words (see `word_neighbors`);
            needed when `replace_prob > 0`.

    Returns:
        A list of `copies * len(texts)` strings: copy 0 of every text, then
        copy 1, and so on.

    Example:

    >>> augment_texts(["a truly great film"], copies=2, seed=1)
    ['a truly great film', 'a truly great']
    """
    for name, value in (("word_dropout", word_dropout), ("ngram_prob", ngram_prob),
                        ("replace_prob", replace_prob)):
        if not (is_real(value) and 0 <= value < 1):
            raise UsageError(f"{name}: must be a number in [0, 1), got {value!r}")
    _check_int("copies", copies, 0)
    _check_int("max_ngram", max_ngram, 1)
    if replace_prob > 0 and not (isinstance(neighbors, dict) and neighbors):
        raise UsageError(
            f"replace_prob: {replace_prob} > 0 needs neighbors (a dict word -> similar words)")
    if isinstance(texts, str):
        raise UsageError("texts: expected a list of strings, got one string")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(int(copies)):
        for text in texts:
            words = str(text).split()
            if len(words) > 1 and rng.random() < ngram_prob:
                n = int(rng.integers(1, min(max_ngram, len(words)) + 1))
                start = int(rng.integers(0, len(words) - n + 1))
                words = words[start:start + n]
            elif len(words) > 1:
                keep = rng.random(len(words)) >= word_dropout
                if not keep.any():
                    keep[rng.integers(len(words))] = True
                words = [w for w, k in zip(words, keep) if k]
            if replace_prob > 0:
                words = [_replaced(w, neighbors, replace_prob, rng) for w in words]
            out.append(" ".join(words))
    return out


def _check_int(name, value, minimum):
    if not is_int(value) or value < minimum:
        raise UsageError(f"{name}: must be an integer >= {minimum}, got {value!r}")


def _replaced(word, neighbors, prob, rng):
    choices = neighbors.get(word)
    if not choices or rng.random() >= prob:
        return word
    return choices[int(rng.integers(len(choices)))]


def with_augmented_train(dataset, copies=1, seed=0, **options):
    """Returns a copy of a `TextDataset` whose train split also holds
    `augment_texts` copies of its texts, unlabeled (`-1`).

    Args:
        dataset: a `kd_keras.data.TextDataset`.
        copies: versions per training text.
        seed: the random seed.
        **options: `word_dropout`, `ngram_prob`, `max_ngram`,
            `replace_prob` and `neighbors`.

    Returns:
        A `TextDataset`; validation and test are unchanged.

    Example:

    >>> ds = with_augmented_train(dataset, copies=1)    # doctest: +SKIP
    >>> ds.sizes()["train"] == 2 * dataset.sizes()["train"]  # doctest: +SKIP
    True
    """
    extra = augment_texts(dataset.texts["train"], copies=copies, seed=seed, **options)
    texts = dict(dataset.texts, train=list(dataset.texts["train"]) + extra)
    labels = np.concatenate(
        [np.asarray(dataset.labels["train"]), np.full(len(extra), -1)]
    ).astype(np.asarray(dataset.labels["train"]).dtype)
    return dataclasses.replace(
        dataset, texts=texts, labels=dict(dataset.labels, train=labels)
    )
