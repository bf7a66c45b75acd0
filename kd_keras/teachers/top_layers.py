"""Fine-tuning the top transformer blocks of a text teacher on cached
activations of the frozen blocks below.

When only the top `N` of a BERT teacher's `L` blocks train, the bottom
`L - N` blocks compute the same thing every epoch. `TopLayerTuner` runs them
ONCE per text (inference mode, no dropout), keeps each text's activations
unpadded in memory, and trains the top blocks, the pooling and the head on
batches of texts of similar length (padded only to the longest in the
batch). Both tricks matter on a CPU: most sentences are far shorter than
the sequence length, so length bucketing saves the work of padding, and
caching the bottom blocks removes their forward pass from every
epoch and every later prediction. What this costs and gains on the
built-in movie reviews is on the results pages ("Teacher adaptation").

The trained layers are the teacher's own layer objects: afterwards the
`TextTeacher` (raw strings in) gives the same logits as `predict`, and
exports or caches as usual.
"""

import keras
import numpy as np
import tensorflow as tf

from kd_keras._keras_compat import producer
from kd_keras.errors import UsageError
from kd_keras.teachers.head import as_strings
from kd_keras.teachers.head import solve_head


def _pooling_mode(classifier):
    pooling = classifier.get_layer("pooling")
    if not isinstance(pooling, keras.layers.Identity):
        return "mean"
    source = producer(pooling.input)
    return "pooled" if source is classifier.get_layer("backbone") else "cls"


class TopLayerTuner:
    """Trains a text teacher's top transformer blocks on cached activations.

    Args:
        teacher: a `TextTeacher` from `kd_keras.teachers.build_text_teacher`
            (its classifier has layers `backbone`, `pooling` and `head`).
            Updated in place.
        num_trainable_layers: how many top transformer blocks train
            (`1 ... num_layers`); the embeddings and the blocks below stay
            frozen.
        batch_size: texts per batch for caching, training and prediction.

    Example:

    >>> teacher = build_text_teacher("path/to/minilm", 2)      # doctest: +SKIP
    >>> tuner = TopLayerTuner(teacher, num_trainable_layers=3)  # doctest: +SKIP
    >>> tuner.add("train", texts); tuner.add("test", test_texts)  # doctest: +SKIP
    >>> tuner.fit_head("train", labels)                         # doctest: +SKIP
    >>> tuner.fit("train", labels, epochs=3)                    # doctest: +SKIP
    >>> logits = tuner.predict("test")                          # doctest: +SKIP
    """

    def __init__(self, teacher, num_trainable_layers, batch_size=64):
        classifier = teacher.classifier
        backbone = classifier.get_layer("backbone")
        total = backbone.num_layers
        if not (isinstance(num_trainable_layers, int) and 1 <= num_trainable_layers <= total):
            raise UsageError(
                f"num_trainable_layers: must be 1..{total} (the backbone's "
                f"transformer blocks); got {num_trainable_layers!r}")
        self.teacher = teacher
        self.batch_size = int(batch_size)
        self.first_trained = total - num_trainable_layers
        boundary = (
            backbone.get_layer(f"transformer_layer_{self.first_trained - 1}")
            if self.first_trained > 0
            else backbone.get_layer("embeddings_layer_norm")
        )
        self._bottom = keras.Model(backbone.input, boundary.output)
        self._bottom_fn = None  # traced once, for any batch and width
        self._blocks = [
            backbone.get_layer(f"transformer_layer_{i}")
            for i in range(self.first_trained, total)
        ]
        self.hidden_dim = int(boundary.output.shape[-1])
        self.top_model = self._build_top(classifier, backbone)
        self._store = {}
        self._inference_fns = {}

    def _run_bottom(self, tokens):
        if self._bottom_fn is None:
            bottom = self._bottom
            signature = {k: tf.TensorSpec((None, None), v.dtype) for k, v in tokens.items()}
            self._bottom_fn = tf.function(lambda t: bottom(t, training=False),
                                          input_signature=[signature])
        return self._bottom_fn(tokens)

    def _inference(self, model):
        """`model` in inference mode as a `tf.function` traced once for any
        batch size and width (a new shape would otherwise trace it again)."""
        if id(model) not in self._inference_fns:
            spec = (tf.TensorSpec((None, None, self.hidden_dim), tf.float32),
                    tf.TensorSpec((None, None), tf.int32))
            self._inference_fns[id(model)] = tf.function(
                lambda x: model(x, training=False), input_signature=[spec])
        return self._inference_fns[id(model)]

    def _build_top(self, classifier, backbone):
        hidden = keras.Input((None, self.hidden_dim), name="hidden")
        mask = keras.Input((None,), dtype="int32", name="padding_mask")
        x = hidden
        for block in self._blocks:
            x = block(x, padding_mask=mask)
        mode = _pooling_mode(classifier)
        if mode == "mean":
            features = classifier.get_layer("pooling")(x, mask)
        elif mode == "cls":
            features = x[:, 0, :]
        else:
            features = backbone.get_layer("pooled_dense")(x[:, 0, :])
        self._features_model = keras.Model([hidden, mask], features)
        logits = classifier.get_layer("head")(features)
        self._both_model = keras.Model([hidden, mask], [logits, features])
        return keras.Model([hidden, mask], logits, name="top_layers")

    def add(self, name, texts, verbose=1):
        """Runs the frozen bottom blocks on `texts` once and keeps the result.

        Args:
            name: the key for `fit`, `fit_head` and `predict` (e.g. a split).
            texts: a sequence of strings.
            verbose: 1 shows a progress bar with ETA.

        Returns:
            The number of texts cached.
        """
        texts = as_strings(texts)
        progress = keras.utils.Progbar(len(texts), verbose=verbose, unit_name="text")
        hidden, lengths = [None] * len(texts), np.zeros(len(texts), np.int64)
        chunk = 16 * self.batch_size  # tokenize a chunk, then bucket it by length
        for start in range(0, len(texts), chunk):
            tokens = self.teacher.tokens(tf.constant(list(texts[start:start + chunk])))
            tokens = {k: v.numpy() for k, v in tokens.items()}
            chunk_lengths = tokens["padding_mask"].sum(axis=1)
            order = np.argsort(chunk_lengths, kind="stable")
            for i in range(0, len(order), self.batch_size):
                rows = order[i:i + self.batch_size]
                width = int(chunk_lengths[rows].max())
                out = self._run_bottom({k: v[rows, :width] for k, v in tokens.items()})
                out = out.numpy()
                for j, row in enumerate(rows):
                    hidden[start + row] = out[j, : chunk_lengths[row]]
                    lengths[start + row] = chunk_lengths[row]
                progress.add(len(rows))
        self._store[name] = (hidden, lengths)
        return len(texts)

    def _get(self, name):
        if name not in self._store:
            raise UsageError(
                f"{name}: no cached texts by that name; call add({name!r}, texts) first")
        return self._store[name]

    def _batches(self, name, rows, rng=None):
        """Yields `(hidden, mask), rows` batches of similar lengths; with
        `rng`, ties are broken and batches ordered at random."""
        hidden, lengths = self._get(name)
        if rng is not None:
            rows = rng.permutation(rows)
        rows = rows[np.argsort(lengths[rows], kind="stable")]
        starts = np.arange(0, len(rows), self.batch_size)
        if rng is not None:
            starts = rng.permutation(starts)
        for start in starts:
            batch = rows[start:start + self.batch_size]
            width = int(lengths[batch].max())
            x = np.zeros((len(batch), width, self.hidden_dim), np.float32)
            mask = np.zeros((len(batch), width), np.int32)
            for j, row in enumerate(batch):
                x[j, : lengths[row]] = hidden[row]
                mask[j, : lengths[row]] = 1
            yield (x, mask), batch

    def _dataset(self, name, labels, seed=None):
        rows = np.flatnonzero(labels >= 0)
        rng = np.random.default_rng(seed) if seed is not None else None
        spec = (
            (
                tf.TensorSpec((None, None, self.hidden_dim), tf.float32),
                tf.TensorSpec((None, None), tf.int32),
            ),
            tf.TensorSpec((None,), tf.int32),
        )

        def generate():  # Called once per epoch: a new order each time.
            for x, batch in self._batches(name, rows, rng):
                yield x, labels[batch].astype(np.int32)

        data = tf.data.Dataset.from_generator(generate, output_signature=spec)
        # A known length gives Keras's progress bar its ETA.
        batches = -(-len(rows) // self.batch_size)
        return data.apply(tf.data.experimental.assert_cardinality(batches)), rows

    def _labels(self, name, labels):
        labels = np.asarray(labels).astype(np.int64)
        count = len(self._get(name)[1])
        if labels.shape != (count,):
            raise UsageError(f"{name}: {count} texts but labels have shape {labels.shape}")
        units = self.teacher.classifier.get_layer("head").units
        if labels.max(initial=-1) >= units:
            raise UsageError(
                f"{name}: labels must lie in [0, {units}) (-1 = unlabeled); got {labels.max()}")
        if not (labels >= 0).any():
            raise UsageError(f"{name}: no labeled texts (every label is -1)")
        return labels

    def _run(self, model, name, rows=None):
        """`model` on the cached texts `rows` (all by default), in order;
        a list of arrays when the model has several outputs."""
        lengths = self._get(name)[1]
        rows = np.arange(len(lengths)) if rows is None else np.asarray(rows)
        position = np.zeros(len(lengths), np.int64)
        position[rows] = np.arange(len(rows))

        call = self._inference(model)
        outputs = model.outputs
        out = [np.zeros((len(rows),) + tuple(o.shape[1:]), np.float32) for o in outputs]
        for x, batch in self._batches(name, rows):
            values = call(x)
            values = values if isinstance(values, (list, tuple)) else [values]
            for array, value in zip(out, values):
                array[position[batch]] = value.numpy()
        return out if len(outputs) > 1 else out[0]

    def fit_head(self, name, labels, l2="auto"):
        """Solves the head on the pooled output of the (current) top blocks
        (`kd_keras.teachers.head.solve_head`); labels of -1 are skipped.
        A good start for `fit`.

        Returns:
            What `solve_head` returns.
        """
        labels = self._labels(name, labels)
        rows = np.flatnonzero(labels >= 0)
        features = self._run(self._features_model, name, rows)
        head = self.teacher.classifier.get_layer("head")
        return solve_head(head, features, labels[rows], l2)

    def fit(self, name, labels, epochs=3, learning_rate=1e-4, weight_decay=0.01,
            warmup=0.1, validation=None, seed=0, verbose=1):
        """Trains the top blocks and the head on the cached texts `name`.

        AdamW with a linear warm-up over the first `warmup` fraction of the
        steps, then cosine decay to 0 (the usual BERT fine-tuning recipe).
        Dropout is active in the trained blocks only.

        Args:
            name: cached texts (see `add`).
            labels: integer labels aligned with those texts; -1 = unlabeled
                (skipped).
            epochs: passes over the labeled texts.
            learning_rate: peak learning rate.
            weight_decay: AdamW weight decay.
            warmup: fraction of the steps spent warming up.
            validation: optional `(name, labels)` of cached texts evaluated
                after each epoch.
            seed: seeds the batch order and dropout.
            verbose: 1 shows Keras's progress bar.

        Returns:
            The `History.history` dict (`loss`, `accuracy`, and `val_*`
            with `validation`).
        """
        labels = self._labels(name, labels)
        keras.utils.set_random_seed(seed)
        data, rows = self._dataset(name, labels, seed)
        steps = epochs * -(-len(rows) // self.batch_size)
        warmup_steps = int(warmup * steps)
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0 if warmup_steps else learning_rate,
            decay_steps=max(steps - warmup_steps, 1),
            warmup_target=learning_rate if warmup_steps else None,
            warmup_steps=warmup_steps,
        )
        model = self.top_model
        for layer in model.layers:
            layer.trainable = True
        model.compile(
            optimizer=keras.optimizers.AdamW(schedule, weight_decay=weight_decay),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            jit_compile=False,  # batches differ in width
        )
        val = None
        if validation is not None:
            val_name, val_labels = validation
            val = self._dataset(val_name, self._labels(val_name, val_labels))[0]
        history = model.fit(data, epochs=epochs, validation_data=val, shuffle=False,
                            verbose=verbose)
        self.teacher.trainable = False
        return history.history

    def predict(self, name):
        """Logits of the cached texts `name`, in their original order
        (the teacher's output on those texts, computed from the cache).

        Returns:
            A float32 array `[len(texts), num_classes]`.
        """
        return self._run(self.top_model, name)

    def predict_with_pooling(self, name):
        """Logits and pooled sentence vectors (the classifier's `pooling`
        output) of the cached texts `name`, from one pass of the top blocks.

        Returns:
            `(logits, pooled)`: float32 `[len(texts), num_classes]` and
            `[len(texts), hidden_dim]`, in the texts' original order.
        """
        logits, pooled = self._run(self._both_model, name)
        return logits, pooled
