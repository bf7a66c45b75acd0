"""A head on a frozen text backbone: the cheapest way to adapt a teacher.

The backbone embeds every training text ONCE (one forward pass, with a
progress bar); the dense head is then solved exactly on those features
(L2-regularised softmax regression, scikit-learn) in seconds. The
backbone's features stay generic, so accuracy is lower than fine-tuning
(measured on the results pages, "Teacher adaptation"); `adapt_text_teacher`
(`kd_keras.teachers.adaptation`) chooses among the head, the top blocks and
the whole backbone. The teacher is updated in place: it stays one
`keras.Model` from raw strings to logits.
"""

import numpy as np

from kd_keras.errors import UsageError
from kd_keras.teachers.embeddings import backbone_embeddings
from kd_keras.teachers.head import solve_head


def sentence_embeddings(teacher, texts, batch_size=64, verbose=1):
    """Embeds texts with the teacher's frozen backbone and pooling (no head).

    Args:
        teacher: a `TextTeacher` from `build_text_teacher`.
        texts: a sequence of strings.
        batch_size: texts per forward pass.
        verbose: 1 shows a progress bar with ETA.

    Returns:
        A float32 array `[len(texts), hidden_dim]`.
    """
    return backbone_embeddings(teacher, {"texts": texts}, None, batch_size,
                             verbose)["texts"]


def fit_head(teacher, texts, labels, l2="auto", batch_size=64, verbose=1):
    """Fits the teacher's head on frozen backbone features computed once.

    The backbone embeds every text once (`sentence_embeddings`, with a progress
    bar). The head is then the exact optimum of an L2-regularised softmax
    regression on the standardised features (scikit-learn's
    `LogisticRegression`), with the standardisation folded back into the
    dense layer, so no epochs or learning rate need tuning.

    Args:
        teacher: a `TextTeacher` from `build_text_teacher`; its `head` layer
            is replaced in place.
        texts: training texts.
        labels: integer labels in `[0, num_classes)`, `[len(texts)]`.
        l2: inverse regularisation strength (scikit-learn's `C`; smaller
            is stronger), or `"auto"` to pick it among `1e-3 ... 10` by
            3-fold cross-validation on the log-loss (calibrated logits are
            what a teacher must give).
        batch_size: texts per backbone forward pass.
        verbose: 1 shows the embedding progress bar.

    Returns:
        A dict `{"train_accuracy": float, "num_examples": int, "l2": float}`
        (`l2` is the strength used).

    Example:

    >>> teacher = build_text_teacher("path/to/minilm", 2)     # doctest: +SKIP
    >>> fit_head(teacher, ["great", "awful"], [1, 0], l2=1.0)  # doctest: +SKIP
    {'train_accuracy': 1.0, 'num_examples': 2, 'l2': 1.0}
    """
    labels = np.asarray(labels).astype(np.int64)
    if len(labels) != len(texts):
        raise UsageError(f"labels: {len(labels)} labels for {len(texts)} texts")
    head = teacher.classifier.get_layer("head")
    num_classes = head.units
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise UsageError(
            f"labels: must lie in [0, {num_classes}); got {labels.min()}..{labels.max()}")
    if len(np.unique(labels)) < 2:
        raise UsageError("labels: fitting a head needs examples of at least two classes")
    features = sentence_embeddings(teacher, texts, batch_size=batch_size, verbose=verbose)
    return solve_head(head, features, labels, l2)
