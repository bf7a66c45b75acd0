"""TF Serving warmup requests for an exported SavedModel.

TF Serving replays the records in
`<version dir>/assets.extra/tf_serving_warmup_requests` when it loads a model
version, before it marks the version as available. Each record is a
`tensorflow_serving.apis.prediction_log_pb2.PredictionLog` whose
`predict_log.request` is a `PredictRequest`. Replaying real validation examples
makes the first user request as fast as the thousandth: graphs are traced,
kernels are picked and memory is allocated during loading instead.

`write_warmup_requests` builds those records from validation examples and
checks them against the signature stored in `saved_model.pb` first, so a
request that TF Serving would reject never reaches the file.
`read_warmup_requests` reads them back (for tests, and for `kd-keras verify`).

The protocol buffers come from `tensorflow-serving-api` (the `serving` extra),
imported on first use: a missing package stops with one line naming
`pip install "kd_keras[serving]"`.
"""

import os

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from kd_keras.errors import DataError
from kd_keras.errors import MissingFileError
from kd_keras.errors import UsageError
from kd_keras.errors import one_line
from kd_keras.errors import require
from kd_keras.files.atomic import atomic_path

WARMUP_DIRNAME = "assets.extra"
WARMUP_FILENAME = "tf_serving_warmup_requests"
# TF Serving reads at most this many warmup records per model version.
MAX_WARMUP_REQUESTS = 1000
FEATURE = "TF Serving warmup requests"


def _apis():
    """`(predict_pb2, prediction_log_pb2)`, or a one-line install hint."""
    predict_pb2 = require("tensorflow_serving.apis.predict_pb2", "serving", FEATURE)
    prediction_log_pb2 = require(
        "tensorflow_serving.apis.prediction_log_pb2", "serving", FEATURE
    )
    return predict_pb2, prediction_log_pb2


def warmup_file_path(saved_model_dir):
    """Return the path TF Serving reads warmup requests from.

    Args:
        saved_model_dir: A SavedModel version directory, e.g.
            `out/saved_model/model/1`.

    Returns:
        `saved_model_dir/assets.extra/tf_serving_warmup_requests`.
    """
    return os.path.join(
        os.fspath(saved_model_dir), WARMUP_DIRNAME, WARMUP_FILENAME
    )


def read_signature_inputs(saved_model_dir, signature_name="serving_default"):
    """Read a signature's input names, dtypes and shapes from `saved_model.pb`.

    Only the protocol buffer is parsed; no graph is loaded, so this is cheap.

    Args:
        saved_model_dir: A SavedModel directory.
        signature_name: The signature to describe.

    Returns:
        A dict `input name -> (tf.DType, shape list with None for dynamic
        dimensions, or None for unknown rank)`.

    Example:

    >>> read_signature_inputs("out/saved_model/model/1")  # doctest: +SKIP
    {'features': (tf.float32, [None, 4])}
    """
    pb_path = os.path.join(os.fspath(saved_model_dir), "saved_model.pb")
    if not os.path.isfile(pb_path):
        raise MissingFileError(f"{pb_path}: no SavedModel here")
    saved_model = saved_model_pb2.SavedModel()
    try:
        with open(pb_path, "rb") as f:
            saved_model.ParseFromString(f.read())
    except Exception as e:  # DecodeError and friends.
        raise DataError(f"{pb_path}: corrupt SavedModel ({one_line(e)})") from None
    for meta_graph in saved_model.meta_graphs:
        if signature_name in meta_graph.signature_def:
            signature = meta_graph.signature_def[signature_name]
            break
    else:
        available = sorted(
            name
            for meta_graph in saved_model.meta_graphs
            for name in meta_graph.signature_def
        )
        raise UsageError(
            f"{pb_path}: signature {signature_name!r} not found; "
            f"available signatures: {available}"
        )
    inputs = {}
    for name, info in signature.inputs.items():
        if info.tensor_shape.unknown_rank:
            shape = None
        else:
            shape = [
                None if dim.size < 0 else int(dim.size)
                for dim in info.tensor_shape.dim
            ]
        inputs[name] = (tf.dtypes.as_dtype(info.dtype), shape)
    return inputs


def _check_examples(examples, signature_inputs, signature_name):
    """Validate `examples` against a signature; return (arrays, batch size)."""
    if not isinstance(examples, dict) or not examples:
        raise UsageError(
            "examples: must be a non-empty dict of input name -> array, "
            f"got {type(examples).__name__}"
        )
    missing = sorted(set(signature_inputs) - set(examples))
    extra = sorted(set(examples) - set(signature_inputs))
    if missing or extra:
        raise UsageError(
            f"examples: keys do not match the inputs of signature "
            f"{signature_name!r}: missing {missing}, unexpected {extra}; "
            f"expected {sorted(signature_inputs)}"
        )
    arrays, sizes = {}, set()
    for name, value in examples.items():
        dtype, shape = signature_inputs[name]
        value = np.asarray(value)
        if dtype == tf.string and value.dtype.kind not in ("U", "S", "O"):
            raise UsageError(
                f"examples[{name!r}]: signature {signature_name!r} takes "
                f"strings, got an array of {value.dtype}"
            )
        if dtype != tf.string and value.dtype.kind in ("U", "S", "O"):
            raise UsageError(
                f"examples[{name!r}]: signature {signature_name!r} takes "
                f"{dtype.name}, got an array of {value.dtype}"
            )
        if value.ndim == 0:
            raise UsageError(
                f"examples[{name!r}]: needs a batch axis, got a scalar"
            )
        if shape is not None:
            compatible = len(shape) == value.ndim and all(
                want is None or want == got
                for want, got in zip(shape[1:], value.shape[1:])
            )
            if not compatible:
                raise UsageError(
                    f"examples[{name!r}]: signature {signature_name!r} expects "
                    f"shape {shape}, got examples of shape {list(value.shape)}"
                )
        arrays[name] = value
        sizes.add(value.shape[0])
    if len(sizes) != 1:
        lengths = {name: a.shape[0] for name, a in arrays.items()}
        raise UsageError(f"examples: arrays differ in batch size: {lengths}")
    (size,) = sizes
    if size == 0:
        raise UsageError("examples: holds no examples (batch size 0)")
    return arrays, size


def build_prediction_log(
    examples, signature_inputs, signature_name, model_name
):
    """Build one `PredictionLog` from a batch of examples.

    Args:
        examples: Dict input name -> array, all with the same batch size.
        signature_inputs: As returned by `read_signature_inputs`; each array
            is converted to the signature's dtype.
        signature_name: The signature the request calls.
        model_name: The model name TF Serving serves the model under.

    Returns:
        A `prediction_log_pb2.PredictionLog`.
    """
    predict_pb2, prediction_log_pb2 = _apis()
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    for name, value in examples.items():
        dtype, _ = signature_inputs[name]
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value, dtype=dtype))
    return prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    )


def write_warmup_requests(
    saved_model_dir,
    examples,
    signature_name="serving_default",
    model_name="model",
    num_requests=10,
    batch_size=1,
    extra_signatures=None,
):
    """Write TF Serving warmup requests into a SavedModel directory.

    Request `i` holds examples `[i * batch_size, (i + 1) * batch_size)` of
    `examples`, wrapping around when the examples run out. The examples are
    checked against the signature in `saved_model.pb` (names, dtypes and
    non-batch dimensions) and cast to its dtypes. The file is written to a
    temporary path next to its destination and renamed into place, so it is
    either complete or absent.

    Args:
        saved_model_dir: A SavedModel version directory
            (`out/saved_model/<name>/<version>`).
        examples: Dict input name -> `np.ndarray` of validation examples,
            batch on axis 0. Keys are the signature's input names.
        signature_name: The signature the requests call.
        model_name: The name the model is served under (`MODEL_NAME`).
            `None` takes it from the TF Serving layout: the name of the
            folder holding the version directory.
        num_requests: How many requests to write (at most 1000, TF
            Serving's limit).
        batch_size: Examples per request.
        extra_signatures: Optional `{signature name: examples}`, e.g.
            `{"serving_text": {"text": sentences}}`: as many requests again
            per signature, written after the others.

    Returns:
        The path of the written file.

    Example:

    >>> import numpy as np
    >>> write_warmup_requests(  # doctest: +SKIP
    ...     "out/saved_model/model/1",
    ...     {"features": np.zeros((8, 4), "float32")},
    ...     model_name="model",
    ...     num_requests=4,
    ... )
    'out/saved_model/model/1/assets.extra/tf_serving_warmup_requests'
    """
    _apis()  # Fail before any work when tensorflow-serving-api is missing.
    if not isinstance(num_requests, int) or not (
        1 <= num_requests <= MAX_WARMUP_REQUESTS
    ):
        raise UsageError(
            f"num_requests: must be an int in [1, {MAX_WARMUP_REQUESTS}], "
            f"got {num_requests!r}"
        )
    if not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"batch_size: must be a positive int, got {batch_size!r}")
    if model_name is None:
        parent = os.path.dirname(os.path.abspath(os.fspath(saved_model_dir)))
        model_name = os.path.basename(parent) or "model"
    batches = {signature_name: examples, **(extra_signatures or {})}
    if len(batches) * num_requests > MAX_WARMUP_REQUESTS:
        raise UsageError(
            f"num_requests: {num_requests} per signature for {len(batches)} "
            f"signatures exceeds TF Serving's {MAX_WARMUP_REQUESTS}"
        )
    records = []
    for name, batch_examples in batches.items():
        signature_inputs = read_signature_inputs(saved_model_dir, name)
        arrays, size = _check_examples(batch_examples, signature_inputs, name)
        for i in range(num_requests):
            rows = np.arange(i * batch_size, (i + 1) * batch_size) % size
            batch = {k: value[rows] for k, value in arrays.items()}
            log = build_prediction_log(batch, signature_inputs, name, model_name)
            records.append(log.SerializeToString())

    path = warmup_file_path(saved_model_dir)
    parent = os.path.dirname(path)
    created_parent = not os.path.isdir(parent)
    os.makedirs(parent, exist_ok=True)
    try:
        with atomic_path(path) as tmp, tf.io.TFRecordWriter(tmp) as writer:
            for record in records:
                writer.write(record)
    except BaseException:
        if created_parent and not os.listdir(parent):
            os.rmdir(parent)
        raise
    return path


def read_warmup_requests(saved_model_dir):
    """Read the warmup requests of a SavedModel directory.

    Args:
        saved_model_dir: A SavedModel version directory holding
            `assets.extra/tf_serving_warmup_requests`.

    Returns:
        A list of `predict_pb2.PredictRequest`, in file order.

    Example:

    >>> requests = read_warmup_requests("out/saved_model/model/1")  # doctest: +SKIP
    >>> request_to_arrays(requests[0])  # doctest: +SKIP
    {'features': array([[0., 0., 0., 0.]], dtype=float32)}
    """
    path = warmup_file_path(saved_model_dir)
    if not os.path.isfile(path):
        raise MissingFileError(f"{path}: no warmup requests (file does not exist)")
    _, prediction_log_pb2 = _apis()
    requests = []
    try:
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            log = prediction_log_pb2.PredictionLog()
            log.ParseFromString(record)
            if log.WhichOneof("log_type") != "predict_log":
                raise ValueError(
                    f"record {len(requests)} is a "
                    f"{log.WhichOneof('log_type')}, not a predict_log"
                )
            requests.append(log.predict_log.request)
    except (tf.errors.DataLossError, ValueError) as e:
        message = getattr(e, "message", None) or str(e)
        raise DataError(f"{path}: corrupt warmup file ({message})") from None
    except Exception as e:  # protobuf DecodeError
        raise DataError(f"{path}: corrupt warmup file ({one_line(e)})") from None
    if not requests:
        raise DataError(f"{path}: corrupt warmup file (it holds no records)")
    return requests


def request_to_arrays(request):
    """Decode the inputs of a `PredictRequest` into NumPy arrays.

    Args:
        request: A `predict_pb2.PredictRequest`.

    Returns:
        A dict input name -> `np.ndarray` (via `tf.make_ndarray`).
    """
    return {
        name: tf.make_ndarray(tensor) for name, tensor in request.inputs.items()
    }
