"""Teachers stored as TensorFlow SavedModels (e.g. a TF Serving export)."""

import hashlib
import os

import keras

from kd_keras._keras_compat import tfsm_signatures
from kd_keras.errors import MissingFileError
from kd_keras.errors import UsageError
from kd_keras.errors import one_line
from kd_keras.files.hashing import sha256_path
from kd_keras.teachers.base import KerasTeacher


@keras.saving.register_keras_serializable(package="kd_keras")
class SignatureLayer(keras.layers.TFSMLayer):
    """A `keras.layers.TFSMLayer` that also calls multi-input signatures and
    picks one output.

    `TFSMLayer` passes its inputs positionally, which a serving signature with
    several named inputs rejects; this layer passes a dict as keyword
    arguments. Signatures return a dict of outputs; `output_key` chooses one.

    Args:
        filepath: the SavedModel directory.
        call_endpoint: a signature name (e.g. `"serving_default"`) or an
            endpoint name of a Keras export (e.g. `"serve"`).
        output_key: the output to return when the endpoint returns a dict.
            `None` is allowed when the dict has exactly one entry.
        **kwargs: passed to `keras.layers.TFSMLayer`.
    """

    def __init__(
        self, filepath, call_endpoint="serving_default", output_key=None, **kwargs
    ):
        super().__init__(filepath, call_endpoint=call_endpoint, **kwargs)
        self.output_key = output_key
        signatures = tfsm_signatures(self)
        if (not hasattr(self.call_endpoint_fn, "structured_input_signature")
                and call_endpoint in signatures):
            # A restored `tf.function` attribute of the same name (kd_keras's
            # export and `tf.saved_model.save` keep one): its signature takes
            # the named inputs this layer passes.
            self.call_endpoint_fn = signatures[call_endpoint]

    def call(self, inputs, training=False):
        if isinstance(inputs, dict):
            outputs = self.call_endpoint_fn(**inputs)
        else:
            outputs = self.call_endpoint_fn(inputs)
        if not isinstance(outputs, dict):
            return outputs
        return outputs[self.chosen_output(outputs)]

    def chosen_output(self, names):
        """The output of the endpoint's dict `names` that holds the logits.

        Raises:
            UsageError: `output_key` is not among `names`, or it is `None`
                and there are several.
        """
        if self.output_key is not None:
            if self.output_key not in names:
                raise UsageError(
                    f"{self.filepath}: SavedModel endpoint "
                    f"'{self.call_endpoint}' has no output "
                    f"'{self.output_key}'; outputs are {sorted(names)}")
            return self.output_key
        if len(names) != 1:
            raise UsageError(
                f"{self.filepath}: SavedModel endpoint '{self.call_endpoint}' "
                f"returns several outputs {sorted(names)}; choose one with "
                "output_key=... in Python, or export a model whose only output is "
                "the logits")
        return next(iter(names))

    def get_config(self):
        config = super().get_config()
        config["output_key"] = self.output_key
        return config


def _check_variables(path):
    """Refuses a SavedModel whose `variables/` folder is missing (a
    `saved_model.pb` copied without it): TensorFlow writes
    `variables/variables.index` even for a model without variables."""
    index = os.path.join(path, "variables", "variables.index")
    if not os.path.isfile(index):
        what = "variables/variables.index" if os.path.isdir(
            os.path.join(path, "variables")) else "the variables/ folder"
        raise MissingFileError(f"{path}: incomplete SavedModel: {what} is missing (the "
                               "weights; copy the whole SavedModel folder, not saved_model.pb "
                               "alone)")


def _input_specs(layer):
    """Returns the endpoint's input `tf.TensorSpec`s: a dict for a signature
    with named inputs, or a single spec."""
    fn = layer.call_endpoint_fn
    if not hasattr(fn, "structured_input_signature"):
        raise UsageError(
            f"{layer.filepath}: SavedModel endpoint '{layer.call_endpoint}' is a function "
            "without a signature; give call_endpoint= one of its signatures "
            f"{sorted(tfsm_signatures(layer))}")
    args, kwargs = fn.structured_input_signature
    if kwargs and not args:
        return dict(kwargs)
    if len(args) == 1 and not kwargs:
        return args[0]
    raise UsageError(
        f"{layer.filepath}: SavedModel endpoint '{layer.call_endpoint}' has an "
        f"input signature kd_keras cannot wrap: {fn.structured_input_signature}")


class SavedModelTeacher(KerasTeacher):
    """A teacher that runs one signature of a SavedModel in the graph.

    The signature is wrapped in a functional `keras.Model` (inputs named as
    in the signature), so it can run inside `Distiller.train_step`. The
    fingerprint hashes every file of the SavedModel plus the endpoint and
    output key.

    Args:
        path: the SavedModel directory (the one holding `saved_model.pb`).
        call_endpoint: signature or endpoint name.
        output_key: which output holds the logits, e.g. `"logits"`.

    Example:

    >>> teacher = SavedModelTeacher("export/1", output_key="logits")  # doctest: +SKIP
    >>> teacher.predict_on_batch(x).shape                             # doctest: +SKIP
    (32, 2)
    """

    def __init__(self, path, call_endpoint="serving_default", output_key=None):
        if not os.path.isfile(os.path.join(path, "saved_model.pb")):
            raise MissingFileError(f"{path}: no saved_model.pb, not a SavedModel")
        _check_variables(path)
        self.path = path
        self.call_endpoint = call_endpoint
        self.output_key = output_key
        try:
            layer = SignatureLayer(
                path, call_endpoint=call_endpoint, output_key=output_key
            )
        except FileNotFoundError as e:  # A variables shard is missing.
            raise MissingFileError(f"{path}: incomplete SavedModel, a file is missing "
                                   f"({one_line(e)}); copy the whole folder") from None
        except (ValueError, OSError, IndexError, TypeError) as e:  # A damaged file.
            raise UsageError(f"{path}: cannot load the SavedModel ({one_line(e)})") from e
        specs = _input_specs(layer)
        outputs = getattr(layer.call_endpoint_fn, "structured_outputs", None)
        if isinstance(outputs, dict):  # Checked here, not inside Keras's call.
            layer.chosen_output(outputs)

        def to_input(name, spec):
            return keras.Input(
                shape=tuple(spec.shape[1:]), dtype=spec.dtype.name, name=name
            )

        if isinstance(specs, dict) and len(specs) == 1:
            # One named input: the model takes a tensor (called on one, a
            # model built on a dict warns on every call), the layer a dict.
            (name, spec), = specs.items()
            inputs = to_input(name, spec)
            outputs = layer({name: inputs})
        elif isinstance(specs, dict):
            inputs = {name: to_input(name, spec) for name, spec in specs.items()}
            outputs = layer(inputs)
        else:
            inputs = to_input(specs.name or "inputs", specs)
            outputs = layer(inputs)
        model = keras.Model(inputs, outputs, name="saved_model_teacher")
        super().__init__(model)
        self._fingerprint = None  # Its files' digest, hashed once at the first call.

    def fingerprint(self):
        if self._fingerprint is None:
            digest = hashlib.sha256(b"saved_model")
            digest.update(f"{self.call_endpoint}|{self.output_key}".encode())
            digest.update(sha256_path(self.path).encode("ascii"))
            self._fingerprint = digest.hexdigest()
        return self._fingerprint
