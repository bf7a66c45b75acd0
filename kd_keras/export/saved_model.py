"""SavedModel in the TF Serving layout: `<root>/<name>/<version>/`.

The `serving_default` signature is a `keras.export.ExportArchive` endpoint
that takes the Keras model's named inputs (dynamic batch) and returns a dict,
so the outputs keep real names: `logits`, `probabilities`, `class_ids`, and
`classes` (label strings) when labels are given. With a text preprocessor
(a KerasHub preprocessor or tokenizer, or any layer mapping strings to the
model's inputs) a second signature, `serving_text`, takes raw strings.
"""

import os
import re

import keras
import numpy as np
import tensorflow as tf

from kd_keras.errors import UsageError
from kd_keras.export.inputs import call_model
from kd_keras.export.layout import TEXT_SIGNATURE
from kd_keras.export.warmup import write_warmup_requests



def serving_name(model, name=None):
    """The model's name in the TF Serving layout: `[A-Za-z0-9_.-]+`.

    Args:
        model: the Keras model; its own name, cleaned, is the default.
        name: the name asked for, used as given: clients call the model by
            it, so one that would need changing is refused.

    Returns:
        The name.

    Raises:
        UsageError: `name` holds other characters, or starts with `.`.

    Example:

    >>> import keras
    >>> serving_name(keras.Sequential(name="my student!"))
    'my_student'
    >>> serving_name(keras.Sequential(), "a/b")
    Traceback (most recent call last):
    ...
    kd_keras.errors.UsageError: name: 'a/b' is not a TF Serving model name (letters, digits, '_', '.' and '-', not starting with '.'): clients call the model by it
    """
    if name is not None:
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*", name):
            raise UsageError(f"name: {name!r} is not a TF Serving model name (letters, digits, "
                             "'_', '.' and '-', not starting with '.'): clients call the "
                             "model by it")
        return name
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", model.name or "").strip("._") or "model"


def next_version(model_root):
    """Returns 1 + the highest integer version under `model_root` (1 if none)."""
    versions = []
    if os.path.isdir(model_root):
        versions = [int(d) for d in os.listdir(model_root) if d.isascii() and d.isdigit()]
    return max(versions, default=0) + 1


def _outputs(logits, labels):
    logits = tf.cast(logits, tf.float32)
    class_ids = tf.argmax(logits, axis=-1, output_type=tf.int32)
    outputs = {
        "logits": logits,
        "probabilities": tf.nn.softmax(logits, axis=-1),
        "class_ids": class_ids,
    }
    if labels is not None:
        outputs["classes"] = tf.gather(labels, class_ids)
    return outputs


def text_model_inputs(text_preprocessor, specs, text):
    """Runs `text_preprocessor` on strings; returns `{input name: tensor}`.

    Accepts preprocessors returning a dict, a tensor (single-input models),
    or a KerasHub `(x, y, sample_weight)` tuple.
    """
    features = text_preprocessor(text)
    if isinstance(features, (tuple, list)):
        features = features[0]
    if not isinstance(features, dict):
        features = {specs[0].name: features}
    missing = [s.name for s in specs if s.name not in features]
    if missing:
        raise UsageError(
            f"text.preprocessor: returns {sorted(features)}, not the model "
            f"input(s) {missing}"
        )
    return {s.name: tf.cast(features[s.name], s.dtype) for s in specs}


def write_saved_model(
    model,
    model_root,
    specs,
    labels=None,
    text_preprocessor=None,
    warmup_examples=None,
    model_name=None,
    warmup_texts=None,
):
    """Writes the next version of `model` under `model_root`.

    Args:
        model: a `keras.Model` that outputs logits.
        model_root: `<root>/<name>`; the version directory is created in it.
            An existing version is never overwritten.
        specs: the model's `InputSpec`s (see `model_input_specs`).
        labels: optional class names; adds the `classes` output.
        text_preprocessor: optional callable (e.g. a KerasHub preprocessor)
            mapping a batch of strings to the model's inputs; adds the
            `serving_text` signature, which takes `text`.
        warmup_examples: optional `{input name: array}` written as TF Serving
            warmup requests in `assets.extra/tf_serving_warmup_requests`
            (needs `tensorflow-serving-api`, the `serving` extra).
        model_name: the TF Serving model name used in warmup requests.
        warmup_texts: optional raw strings; with a text preprocessor, also
            written as `serving_text` warmup requests.

    Returns:
        The path of the written version directory.

    Example:

    >>> import keras, tempfile
    >>> from kd_keras.export.inputs import model_input_specs
    >>> m = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(2)])
    >>> root = tempfile.mkdtemp()
    >>> os.path.basename(write_saved_model(m, root, model_input_specs(m)))
    '1'
    """
    version_dir = os.path.join(model_root, str(next_version(model_root)))
    if os.path.exists(version_dir):  # pragma: no cover - next_version guards it
        raise FileExistsError(f"SavedModel version {version_dir!r} already exists")
    label_table = None
    if labels is not None:
        label_table = tf.constant([str(l) for l in labels], dtype=tf.string)

    archive = keras.export.ExportArchive()
    archive.track(model)
    input_signature = {s.name: s.tensor_spec() for s in specs}

    def serve(inputs):
        return _outputs(call_model(model, specs, inputs), label_table)

    archive.add_endpoint(
        "serving_default", serve, input_signature=[input_signature]
    )
    if text_preprocessor is not None:
        if isinstance(text_preprocessor, keras.layers.Layer):
            if not text_preprocessor.built:
                text_preprocessor(tf.constant(["build"]))
            archive.track(text_preprocessor)

        def serve_text(text):
            features = text_model_inputs(text_preprocessor, specs, text)
            return _outputs(call_model(model, specs, features), label_table)

        archive.add_endpoint(
            TEXT_SIGNATURE,
            serve_text,
            input_signature=[tf.TensorSpec([None], tf.string, name="text")],
        )
    os.makedirs(model_root, exist_ok=True)
    archive.write_out(version_dir, verbose=False)
    if warmup_examples is not None:
        texts = warmup_texts if text_preprocessor is not None else None
        _write_warmup(version_dir, warmup_examples, model_name, texts)
    return version_dir


def _write_warmup(version_dir, examples, model_name, texts=None):
    extra = {}
    if texts is not None and len(texts):
        encoded = [t if isinstance(t, bytes) else str(t).encode("utf-8") for t in texts]
        extra[TEXT_SIGNATURE] = {"text": np.array(encoded, dtype=object)}
    write_warmup_requests(
        version_dir,
        {k: np.asarray(v) for k, v in examples.items()},
        signature_name="serving_default",
        model_name=model_name,
        num_requests=min(8, len(next(iter(examples.values())))),
        extra_signatures=extra,
    )
