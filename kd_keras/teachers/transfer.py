"""Transfer learning: adapt a pretrained text backbone to the task before it
teaches.

Two ways, with a clear tradeoff:

* **Head on a frozen backbone** (`fit_head`, `train_backbone=False`). The
  backbone embeds every training text ONCE (one forward pass, with a progress
  bar); a small dense head is then fitted on those features for as many
  epochs as wanted at almost no cost. With all-MiniLM-L6-v2 on 2 CPU cores
  that is one pass at ~30 sentences/s, then milliseconds per head epoch. The
  backbone's features stay generic, so accuracy is a little lower.
* **Fine-tuning** (`fine_tune(..., train_backbone=True)`), the top
  `num_trainable_layers` transformer blocks or the whole backbone. Every
  epoch pays forward and backward passes through the trained blocks (about
  3x a forward pass each), so it costs roughly `3 * epochs` times the frozen
  route's one pass, for usually a few points more accuracy.

Both update the teacher in place: it stays one `keras.Model` from raw
strings to logits, which `Distiller` runs in the graph or
`kd_keras.cache` caches.
"""

import os

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from kd_keras.teachers.bert import _read_json
from kd_keras.teachers.bert import load_bert_teacher


def _tokenizer(backbone_dir):
    vocab = os.path.join(str(backbone_dir), "vocab.txt")
    if not os.path.isfile(vocab):  # A KerasHub preset carries its own.
        return keras_hub.models.BertTokenizer.from_preset(backbone_dir)
    lowercase = True
    config_path = os.path.join(backbone_dir, "tokenizer_config.json")
    if os.path.isfile(config_path):
        lowercase = bool(_read_json(config_path).get("do_lower_case", True))
    return keras_hub.models.BertTokenizer(vocabulary=vocab, lowercase=lowercase)


def build_text_teacher(
    backbone_dir, num_classes, sequence_length=64, pooling=None, name="text_teacher"
):
    """Builds a teacher from raw text to logits on a pretrained BERT backbone.

    The model tokenizes in the graph (KerasHub `BertTokenizer` on the
    checkpoint's `vocab.txt`, then `[CLS] ... [SEP]` packing and padding to
    `sequence_length`), runs the backbone, pools (masked mean for
    sentence-transformers checkpoints like all-MiniLM-L6-v2) and applies a
    dense head. A checkpoint without a classification head gets a new,
    untrained one: call `fit_head` or `fine_tune` next.

    Args:
        backbone_dir: a local Hugging Face BERT checkpoint directory
            (`config.json`, `model.safetensors`, `vocab.txt`) or a KerasHub
            preset.
        num_classes: number of logits.
        sequence_length: tokens per text, `[CLS]`/`[SEP]` included.
        pooling: `"mean"`, `"cls"` or `"pooled"`; default: the checkpoint's.
        name: the model's name.

    Returns:
        A `keras.Model` taking a `[batch]` string tensor and returning
        `[batch, num_classes]` logits. Its layers `preprocessor` and
        `classifier` (with sub-layers `backbone`, `pooling`, `head`) can be
        reached with `get_layer`.

    Example:

    >>> teacher = build_text_teacher("path/to/minilm", num_classes=2,
    ...                              sequence_length=32)      # doctest: +SKIP
    >>> teacher(tf.constant(["a gem of a film"])).shape        # doctest: +SKIP
    TensorShape([1, 2])
    """
    classifier = load_bert_teacher(backbone_dir, num_classes=num_classes, pooling=pooling)
    classifier.name = "classifier"
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        _tokenizer(backbone_dir), sequence_length=sequence_length, name="preprocessor"
    )
    text = keras.Input(shape=(), dtype="string", name="text")
    features = preprocessor(text)
    logits = classifier(
        {
            "token_ids": features["token_ids"],
            "padding_mask": keras.ops.cast(features["padding_mask"], "int32"),
            "segment_ids": features["segment_ids"],
        }
    )
    return keras.Model(text, logits, name=name)


def _as_strings(texts):
    return np.asarray([t if isinstance(t, (str, bytes)) else str(t) for t in texts], dtype=object)


def text_features(teacher, texts, batch_size=64, verbose=1):
    """Embeds texts with the teacher's frozen backbone and pooling (no head).

    Args:
        teacher: a model from `build_text_teacher`.
        texts: a sequence of strings.
        batch_size: texts per forward pass.
        verbose: 1 shows a progress bar with ETA.

    Returns:
        A float32 array `[len(texts), hidden_dim]`.
    """
    classifier = teacher.get_layer("classifier")
    embed_tokens = keras.Model(
        classifier.input, classifier.get_layer("pooling").output
    )
    preprocessor = teacher.get_layer("preprocessor")
    text = keras.Input(shape=(), dtype="string")
    tokens = preprocessor(text)
    tokens["padding_mask"] = keras.ops.cast(tokens["padding_mask"], "int32")
    embedder = keras.Model(text, embed_tokens(tokens))
    return embedder.predict(_as_strings(texts), batch_size=batch_size, verbose=verbose)


def fit_head(
    teacher,
    texts,
    labels,
    epochs=30,
    batch_size=32,
    learning_rate=1e-2,
    validation_split=0.0,
    verbose=1,
):
    """Trains the teacher's head on frozen backbone features computed once.

    Args:
        teacher: a model from `build_text_teacher`; its `head` layer is
            updated in place.
        texts: training texts.
        labels: integer labels, `[len(texts)]`.
        epochs: head epochs over the cached features (cheap).
        batch_size: head batch size.
        learning_rate: Adam learning rate for the head.
        validation_split: fraction of the features held out by `fit`.
        verbose: 1 shows the embedding progress bar and `fit` logs.

    Returns:
        The head's `keras.callbacks.History`.

    Example:

    >>> teacher = build_text_teacher("path/to/minilm", 2)         # doctest: +SKIP
    >>> fit_head(teacher, ["great", "awful"], [1, 0], epochs=5)   # doctest: +SKIP
    """
    labels = np.asarray(labels, dtype=np.int32)
    if len(labels) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels.")
    features = text_features(teacher, texts, verbose=verbose)
    head = teacher.get_layer("classifier").get_layer("head")
    head_model = keras.Sequential([keras.Input(features.shape[1:]), head])
    head_model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["sparse_categorical_accuracy"],
    )
    return head_model.fit(
        features,
        labels,
        epochs=epochs,
        batch_size=batch_size,
        validation_split=validation_split,
        shuffle=True,
        verbose=2 if verbose else 0,
    )


def _set_trainable(teacher, train_backbone, num_trainable_layers):
    classifier = teacher.get_layer("classifier")
    backbone = classifier.get_layer("backbone")
    teacher.get_layer("preprocessor").trainable = False
    if not train_backbone:
        backbone.trainable = False
        return
    backbone.trainable = True
    if num_trainable_layers is None:
        return
    if not 0 <= num_trainable_layers <= backbone.num_layers:
        raise ValueError(
            f"num_trainable_layers={num_trainable_layers}; the backbone has "
            f"{backbone.num_layers} transformer layers."
        )
    first = backbone.num_layers - num_trainable_layers
    for layer in backbone.layers:
        if layer.name.startswith("transformer_layer_"):
            layer.trainable = int(layer.name.rsplit("_", 1)[1]) >= first
        elif layer.name != "pooled_dense":
            layer.trainable = False  # embeddings and their layer norm


def fine_tune(
    teacher,
    texts,
    labels,
    epochs=3,
    train_backbone=False,
    num_trainable_layers=None,
    learning_rate=None,
    batch_size=32,
    head_epochs=None,
    validation_data=None,
    verbose=1,
):
    """Adapts a text teacher to the task: the entry point for `teacher:
    fine_tune:` in a `kd-keras distill` config.

    With `train_backbone=False` this is `fit_head` (features computed once).
    With `train_backbone=True` the head is first fitted on frozen features
    (so fine-tuning starts from a sensible head), then the top
    `num_trainable_layers` transformer blocks (all when `None`) and the head
    are trained end to end for `epochs` epochs.

    Args:
        teacher: a model from `build_text_teacher`, updated in place.
        texts: training texts.
        labels: integer labels.
        epochs: end-to-end epochs (or head epochs when the backbone is
            frozen and `head_epochs` is `None`).
        train_backbone: whether to train backbone weights.
        num_trainable_layers: how many top transformer blocks to train.
        learning_rate: default 1e-2 for a head alone, 2e-5 end to end.
        batch_size: batch size.
        head_epochs: epochs of the frozen-feature head fit; default `epochs`
            when the backbone is frozen, 20 before end-to-end fine-tuning.
        validation_data: optional `(texts, labels)` for end-to-end `fit`.
        verbose: 1 shows progress bars.

    Returns:
        The last `keras.callbacks.History`.
    """
    if not train_backbone:
        return fit_head(
            teacher,
            texts,
            labels,
            epochs=head_epochs or epochs,
            batch_size=batch_size,
            learning_rate=learning_rate or 1e-2,
            verbose=verbose,
        )
    fit_head(teacher, texts, labels, epochs=head_epochs or 20, verbose=verbose)
    _set_trainable(teacher, True, num_trainable_layers)
    teacher.compile(
        optimizer=keras.optimizers.Adam(learning_rate or 2e-5),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["sparse_categorical_accuracy"],
    )
    train = tf.data.Dataset.from_tensor_slices(
        (tf.constant(list(_as_strings(texts))), np.asarray(labels, np.int32))
    ).shuffle(len(texts), seed=0).batch(batch_size)
    val = None
    if validation_data is not None:
        val = tf.data.Dataset.from_tensor_slices(
            (tf.constant(list(_as_strings(validation_data[0]))),
             np.asarray(validation_data[1], np.int32))
        ).batch(batch_size)
    history = teacher.fit(train, epochs=epochs, validation_data=val, verbose=verbose)
    teacher.trainable = False
    return history
