"""Transfer-set augmentation: new unlabeled texts for the teacher to label.

A student learns from the teacher wherever the teacher can be run, not only
on the labeled examples. With few extra texts at hand, perturbed copies of
the training texts make a transfer set (Tang et al., 2019, "Distilling
Task-Specific Knowledge from BERT into Simple Neural Networks"): each copy
is, with probability `ngram_prob`, a random n-gram of the text, and
otherwise the text with each word dropped with probability `word_dropout`.
The copies carry no label (`-1`): the teacher's logits on them are the only
signal, so a wrong "label" cannot leak in.
"""

import dataclasses

import numpy as np


def augment_texts(texts, copies=1, word_dropout=0.1, ngram_prob=0.25, max_ngram=5,
                  seed=0):
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

    Returns:
        A list of `copies * len(texts)` strings: copy 0 of every text, then
        copy 1, and so on.

    Example:

    >>> augment_texts(["a truly great film"], copies=2, seed=1)
    ['a truly great film', 'a truly great']
    """
    for name, value in (("word_dropout", word_dropout), ("ngram_prob", ngram_prob)):
        if not 0 <= value < 1:
            raise ValueError(f"{name} must be in [0, 1); got {value}.")
    if int(copies) < 0 or int(max_ngram) < 1:
        raise ValueError(f"copies must be >= 0 and max_ngram >= 1; got {copies}, {max_ngram}.")
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
            out.append(" ".join(words))
    return out


def with_augmented_train(dataset, copies=1, seed=0, **options):
    """Returns a copy of a `TextDataset` whose train split also holds
    `augment_texts` copies of its texts, unlabeled (`-1`).

    Args:
        dataset: a `kd_keras.data.TextDataset`.
        copies: versions per training text.
        seed: the random seed.
        **options: `word_dropout`, `ngram_prob`, `max_ngram`.

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
