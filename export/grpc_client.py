#!/usr/bin/env python
"""Call a model served by TF Serving over gRPC (PredictionService.Predict).

    python export/grpc_client.py --model student --examples examples.npz
    python export/grpc_client.py --model student --text "a gorgeous film" "dull"
    python export/grpc_client.py --model student \\
        --warmup out/saved_model/student/1

`examples.npz` holds one array per signature input, named as the input.
gRPC, unlike REST, sends typed tensors: the client asks the server for the
signature's input dtypes (GetModelMetadata) and casts to them, unless
`--no-cast`. `--text` sends raw sentences (a string tensor `text`) to the
`serving_text` signature of a model exported with its tokenizer. `--warmup`
replays the first request stored in a SavedModel's
`assets.extra/tf_serving_warmup_requests` instead, a quick smoke test of a
deployment. The outputs are printed as JSON.

Building the request (`build_predict_request`) and reading the response
(`parse_predict_response`) are pure functions; only `predict` and
`fetch_input_dtypes` open a channel. Needs `tensorflow-serving-api` (which
brings `grpcio`): `pip install "kd_keras[serving]"`; without it the script
stops with that one line.
"""

import argparse
import importlib
import json
import os
import sys

import numpy as np

DEFAULT_TARGET = "localhost:8500"
TEXT_SIGNATURE = "serving_text"
TEXT_INPUT = "text"


def _require(module):
    """Imports a module of the `serving` extra, or stops with one line."""
    try:
        from kd_keras.errors import require
    except ImportError:  # A serving host without kd_keras: same message.
        try:
            return importlib.import_module(module)
        except ImportError:
            top = module.split(".")[0]
            raise ImportError(
                f'grpc_client needs {top}: pip install "kd_keras[serving]"'
            ) from None
    return require(module, "serving", "grpc_client")


def _tf():
    import tensorflow as tf  # Imported late: `--help` stays fast.

    return tf


def build_predict_request(
    model_name, signature_name, examples, version=None, dtypes=None
):
    """Build a `PredictRequest` for a TF Serving signature.

    Args:
        model_name: The served model name (`MODEL_NAME`, or the `name` in
            `models.config`).
        signature_name: The signature to call, e.g. `"serving_default"`.
        examples: Dict input name -> array (batch on axis 0).
        version: Optional model version; by default the server picks the
            latest.
        dtypes: Optional dict input name -> dtype to cast to (e.g. the
            signature's `tf.int32` for NumPy's default int64).

    Returns:
        A `tensorflow_serving.apis.predict_pb2.PredictRequest`.

    Example:

    >>> request = build_predict_request(  # doctest: +SKIP
    ...     "student", "serving_default", {"x": np.zeros((2, 4), "float32")})
    >>> request.inputs["x"].tensor_shape.dim[0].size  # doctest: +SKIP
    2
    """
    predict_pb2 = _require("tensorflow_serving.apis.predict_pb2")
    tf = _tf()
    if not isinstance(examples, dict) or not examples:
        raise ValueError(
            "examples: must be a non-empty dict of input name -> array, "
            f"got {type(examples).__name__}"
        )
    dtypes = dtypes or {}
    unknown = sorted(set(dtypes) - set(examples))
    if unknown:
        raise ValueError(f"dtypes: name inputs that are not in examples: {unknown}")
    sizes = {}
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, value in examples.items():
        value = np.asarray(value)
        if value.ndim == 0:
            raise ValueError(f"examples[{name!r}]: needs a batch axis, got a scalar")
        if value.shape[0] == 0:
            raise ValueError(f"examples[{name!r}]: holds no examples")
        sizes[name] = value.shape[0]
        dtype = dtypes.get(name)
        if dtype is not None:
            _check_cast(name, value, tf.dtypes.as_dtype(dtype))
        proto = tf.make_tensor_proto(value, dtype=dtype)
        request.inputs[name].CopyFrom(proto)
    if len(set(sizes.values())) != 1:
        raise ValueError(f"examples: inputs differ in batch size: {sizes}")
    return request


def _check_cast(name, value, dtype):
    """Refuses a cast to the signature's integer dtype that would change a
    value: a fraction (1.7 -> 1) or one out of range (2**31 + 5 wraps to a
    negative id), and numbers for a string input. Over REST the server
    refuses them; gRPC must too."""
    if dtype == _tf().string and value.dtype.kind not in "OSU":
        raise ValueError(f"examples[{name!r}]: holds {value.dtype} values, but the signature "
                         "takes strings")
    if not dtype.is_integer or value.dtype.kind not in "biuf":
        return
    if value.dtype.kind == "f" and not np.all(np.isfinite(value) & (value == np.round(value))):
        raise ValueError(f"examples[{name!r}]: holds non-whole numbers, but the signature "
                         f"takes {dtype.name}")
    if value.size and (value.min() < dtype.min or value.max() > dtype.max):
        raise ValueError(f"examples[{name!r}]: holds values outside {dtype.name}'s range "
                         f"[{dtype.min}, {dtype.max}]")


def text_examples(sentences):
    """The `serving_text` input for raw sentences: `{"text": UTF-8 bytes}`.

    Example:

    >>> text_examples(["a fine film"])["text"].tolist()
    [b'a fine film']
    """
    return {TEXT_INPUT: np.array([str(s).encode("utf-8") for s in sentences], dtype=object)}


def parse_predict_response(response):
    """Decode a `PredictResponse` into a dict output name -> `np.ndarray`."""
    tf = _tf()
    return {name: tf.make_ndarray(t) for name, t in response.outputs.items()}


def outputs_as_json(outputs):
    """The response's outputs as one line of JSON; string outputs (a
    model's class names) as text.

    >>> outputs_as_json({"classes": np.array([b"pos"], object), "ids": np.array([1])})
    '{"classes": ["pos"], "ids": [1]}'
    """
    def plain(value):
        if value.dtype.kind in "SO":
            value = np.vectorize(
                lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else v,
                otypes=[object])(value)
        return value.tolist()

    return json.dumps({name: plain(value) for name, value in outputs.items()})


def _call(target, method, request, timeout):
    grpc = _require("grpc")
    prediction_service_pb2_grpc = _require(
        "tensorflow_serving.apis.prediction_service_pb2_grpc"
    )

    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            return getattr(stub, method)(request, timeout=timeout)
        except grpc.RpcError as e:
            raise RuntimeError(
                f"{target}: {e.code().name}: {e.details()}"
            ) from None


def predict(target, request, timeout=10.0):
    """Send a `PredictRequest` to `target` (`host:port`) and return the response.

    Args:
        target: The TF Serving gRPC address, e.g. `"localhost:8500"`.
        request: A `PredictRequest` (see `build_predict_request`).
        timeout: Seconds to wait for the server.

    Returns:
        A `tensorflow_serving.apis.predict_pb2.PredictResponse`.
    """
    return _call(target, "Predict", request, timeout)


def fetch_input_dtypes(target, model_name, signature_name, version=None,
                       timeout=10.0):
    """Ask the server for a signature's input dtypes (GetModelMetadata).

    Args:
        target: The TF Serving gRPC address.
        model_name: The served model name.
        signature_name: The signature whose inputs to describe.
        version: Optional model version.
        timeout: Seconds to wait for the server.

    Returns:
        A dict input name -> `tf.DType`, ready for `build_predict_request`'s
        `dtypes`.
    """
    get_model_metadata_pb2 = _require("tensorflow_serving.apis.get_model_metadata_pb2")
    tf = _tf()
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = model_name
    if version is not None:
        request.model_spec.version.value = int(version)
    request.metadata_field.append("signature_def")
    response = _call(target, "GetModelMetadata", request, timeout)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    if signature_name not in signatures.signature_def:
        raise ValueError(
            f"{signature_name}: model {model_name!r} has no such signature; "
            f"it has {sorted(signatures.signature_def)}"
        )
    inputs = signatures.signature_def[signature_name].inputs
    return {name: tf.dtypes.as_dtype(info.dtype) for name, info in inputs.items()}


def load_warmup_request(saved_model_dir, index=0):
    """Read request `index` of a SavedModel's TF Serving warmup file."""
    prediction_log_pb2 = _require("tensorflow_serving.apis.prediction_log_pb2")
    tf = _tf()
    path = os.path.join(saved_model_dir, "assets.extra", "tf_serving_warmup_requests")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no warmup requests (file does not exist)")
    from google.protobuf.message import DecodeError

    try:
        for i, record in enumerate(tf.data.TFRecordDataset(path)):
            if i == index:
                log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
                return log.predict_log.request
    except tf.errors.DataLossError as e:
        raise ValueError(f"{path}: corrupt warmup file ({e.message})") from None
    except DecodeError as e:
        raise ValueError(f"{path}: record {index} is not a PredictionLog ({e})") from None
    raise ValueError(f"{path}: has no request number {index}")


def load_examples(path, limit=None):
    """Load examples from an `.npz` file holding one array per input name."""
    try:
        data = np.load(path, allow_pickle=False)
        if not hasattr(data, "files"):  # An .npy: one unnamed array.
            raise ValueError("one unnamed array; save an .npz of input name -> array "
                             "(np.savez(path, token_ids=...))")
        with data:
            examples = {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: examples file not found") from None
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read examples ({e})") from None
    for name, value in examples.items():
        if value.ndim == 0:
            raise ValueError(f"{path}: input {name!r} is one value, not a batch of examples")
    if limit is not None:
        examples = {name: value[:limit] for name, value in examples.items()}
    return examples


def positive_int(text):
    """`--limit`: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        description="Call a TF Serving model over gRPC and print its outputs.",
    )
    parser.add_argument("--target", default=DEFAULT_TARGET,
                        help="TF Serving gRPC address (default: %(default)s)")
    parser.add_argument("--model", required=True,
                        help="model name, as MODEL_NAME / models.config says")
    parser.add_argument("--version", type=int, default=None,
                        help="model version (default: the latest served)")
    parser.add_argument("--signature", default=None,
                        help="signature name (default: serving_text with --text, "
                             "the warmup request's own with --warmup, else "
                             "serving_default)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--examples",
                        help=".npz file, one array per input name")
    source.add_argument("--text", nargs="+", metavar="SENTENCE",
                        help="raw sentences, for a model exported with its tokenizer")
    source.add_argument("--warmup", metavar="SAVED_MODEL_DIR",
                        help="replay the first warmup request of this "
                             "SavedModel version directory")
    parser.add_argument("--limit", type=positive_int, default=None,
                        help="send only the first N examples")
    parser.add_argument("--no-cast", action="store_true",
                        help="send --examples arrays with their own dtypes "
                             "instead of asking the server (GetModelMetadata) "
                             "for the signature's and casting to them")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait (default: %(default)s)")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.warmup:
            request = load_warmup_request(args.warmup)
            request.model_spec.name = args.model
            if args.signature:
                request.model_spec.signature_name = args.signature
            if args.version is not None:
                request.model_spec.version.value = args.version
        elif args.text:
            request = build_predict_request(
                args.model, args.signature or TEXT_SIGNATURE,
                text_examples(args.text[: args.limit]), args.version,
                {TEXT_INPUT: _tf().string},
            )
        else:
            examples = load_examples(args.examples, args.limit)
            dtypes = None
            signature = args.signature or "serving_default"
            if not args.no_cast:
                dtypes = fetch_input_dtypes(args.target, args.model,
                                            signature, args.version,
                                            args.timeout)
                dtypes = {k: v for k, v in dtypes.items() if k in examples}
            request = build_predict_request(
                args.model, signature, examples, args.version, dtypes
            )
        outputs = parse_predict_response(predict(args.target, request, args.timeout))
    except (ValueError, FileNotFoundError, RuntimeError, ImportError) as e:
        print(f"grpc_client: error: {e}", file=sys.stderr)
        return 2
    print(outputs_as_json(outputs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
