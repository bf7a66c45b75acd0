"""Tests for the TF Serving clients in export/ (rest_client.py, grpc_client.py).

No TF Serving server runs here. The request building is checked against the
signature of a real SavedModel: the requests decode to tensors of the
signature's names, dtypes and shapes, and running the signature on them gives
the Keras model's logits. The requests also match the warmup records written
by `kd_keras.export.warmup`. The sending code runs against small in-process
stand-ins on 127.0.0.1 that decode requests the way TF Serving does and run
the same signature.
"""

import contextlib
import importlib.util
import json
import os
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

from conftest import REPO_ROOT
from kd_keras.export import warmup


def _load_script(name):
    path = os.path.join(REPO_ROOT, "export", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"serving_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rest_client = _load_script("rest_client")
grpc_client = _load_script("grpc_client")

MODEL_NAME = "student"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A two-input (ids + mask) classifier in TF Serving layout, with examples."""
    ids = keras.Input((5,), dtype="int32", name="token_ids")
    mask = keras.Input((5,), dtype="float32", name="padding_mask")
    x = keras.layers.Embedding(30, 4)(ids) * keras.ops.expand_dims(mask, -1)
    logits = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling1D()(x))
    model = keras.Model({"token_ids": ids, "padding_mask": mask}, logits)

    def serve(inputs):
        out = model(inputs, training=False)
        return {
            "logits": out,
            "probabilities": tf.nn.softmax(out),
            "class_ids": tf.argmax(out, axis=-1),
        }

    path = str(tmp_path_factory.mktemp("serving") / "saved_model" / MODEL_NAME / "1")
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default",
        serve,
        input_signature=[
            {
                "token_ids": tf.TensorSpec([None, 5], tf.int32, name="token_ids"),
                "padding_mask": tf.TensorSpec([None, 5], tf.float32, name="padding_mask"),
            }
        ],
    )
    archive.write_out(path, verbose=False)
    rng = np.random.default_rng(2)
    examples = {
        "token_ids": rng.integers(0, 30, size=(4, 5)).astype("int32"),
        "padding_mask": (rng.random((4, 5)) > 0.3).astype("float32"),
    }
    expected = model.predict_on_batch(examples)
    signature = tf.saved_model.load(path).signatures["serving_default"]
    return {"path": path, "examples": examples, "logits": expected, "signature": signature}


def _input_specs(signature):
    _, kwargs = signature.structured_input_signature
    return kwargs


def _run_decoded(served, tensors):
    """Check decoded request tensors against the signature, then run it."""
    specs = _input_specs(served["signature"])
    assert set(tensors) == set(specs)
    for name, tensor in tensors.items():
        assert tensor.dtype == specs[name].dtype, name
        assert specs[name].shape.is_compatible_with(tensor.shape), name
    return served["signature"](**tensors)


def _rest_decode(served, inputs):
    """How TF Serving reads JSON: values cast to the signature's dtypes."""
    specs = _input_specs(served["signature"])
    return {name: tf.constant(value, dtype=specs[name].dtype) for name, value in inputs.items()}


@pytest.mark.parametrize("row_format", [False, True])
def test_rest_request_runs_the_signature(served, row_format):
    body = rest_client.build_rest_request("serving_default", served["examples"], row_format)
    body = json.loads(json.dumps(body))  # It must survive the wire as JSON.
    assert body["signature_name"] == "serving_default"
    if row_format:
        assert len(body["instances"]) == 4
        inputs = {name: [row[name] for row in body["instances"]] for name in body["instances"][0]}
    else:
        inputs = body["inputs"]
    outputs = _run_decoded(served, _rest_decode(served, inputs))
    np.testing.assert_allclose(outputs["logits"].numpy(), served["logits"], atol=1e-5)


def test_grpc_request_runs_the_signature(served):
    specs = _input_specs(served["signature"])
    examples = {k: v.astype("int64") if v.dtype.kind == "i" else v for k, v in served["examples"].items()}
    request = grpc_client.build_predict_request(
        MODEL_NAME, "serving_default", examples, version=1,
        dtypes={name: spec.dtype for name, spec in specs.items()},
    )
    request = predict_pb2.PredictRequest.FromString(request.SerializeToString())
    assert request.model_spec.name == MODEL_NAME
    assert request.model_spec.version.value == 1
    tensors = {name: tf.constant(tf.make_ndarray(t)) for name, t in request.inputs.items()}
    outputs = _run_decoded(served, tensors)
    np.testing.assert_allclose(outputs["logits"].numpy(), served["logits"], atol=1e-5)


def test_requests_agree_with_the_warmup_records(served):
    warmup.write_warmup_requests(
        served["path"], served["examples"], model_name=MODEL_NAME, num_requests=2, batch_size=4
    )
    records = warmup.read_warmup_requests(served["path"])
    built = grpc_client.build_predict_request(MODEL_NAME, "serving_default", served["examples"])
    for record in records:
        assert record == built  # Same model spec, names, dtypes, shapes and values.
    replayed = grpc_client.load_warmup_request(served["path"], index=1)
    assert replayed == built

    decoded = warmup.request_to_arrays(records[0])
    assert rest_client.build_rest_request("serving_default", decoded) == (
        rest_client.build_rest_request("serving_default", served["examples"])
    )


# In-process stand-ins for TF Serving.


def _rest_handler(served):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _reply(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path != f"/v1/models/{MODEL_NAME}:predict":
                return self._reply(404, {"error": f"Servable not found for {self.path}"})
            wanted = served.get("signature_name", "serving_default")
            if body.get("signature_name", "serving_default") != wanted:
                return self._reply(400, {"error": f"no signature {body.get('signature_name')}"})
            if "instances" in body:
                rows = body["instances"]
                inputs = {name: [row[name] for row in rows] for name in rows[0]}
            else:
                inputs = body["inputs"]
            out = served["signature"](**_rest_decode(served, inputs))
            # TF Serving sends string tensors (class names) as JSON text.
            out = {name: np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else v,
                                      otypes=[object])(value.numpy()).tolist()
                   for name, value in out.items()}
            if "instances" in body:
                n = len(body["instances"])
                return self._reply(200, {"predictions": [{k: v[i] for k, v in out.items()} for i in range(n)]})
            return self._reply(200, {"outputs": out})

    return Handler


@contextlib.contextmanager
def _rest_server(served, handler=None):
    """A local HTTP server: TF Serving's REST API on `served`, or `handler`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler or _rest_handler(served))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, served):
        self.served = served

    def Predict(self, request, context):
        wanted = self.served.get("signature_name", "serving_default")
        if request.model_spec.signature_name != wanted:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "wrong signature")
        specs = _input_specs(self.served["signature"])
        for name, tensor in request.inputs.items():
            if name not in specs or tensor.dtype != specs[name].dtype.as_datatype_enum:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad input {name}")
        arrays = {name: tf.constant(tf.make_ndarray(t)) for name, t in request.inputs.items()}
        out = self.served["signature"](**arrays)
        response = predict_pb2.PredictResponse()
        for name, value in out.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
        return response

    def GetModelMetadata(self, request, context):
        with open(os.path.join(self.served["path"], "saved_model.pb"), "rb") as f:
            saved_model = saved_model_pb2.SavedModel.FromString(f.read())
        signatures = get_model_metadata_pb2.SignatureDefMap()
        for name, signature in saved_model.meta_graphs[0].signature_def.items():
            signatures.signature_def[name].CopyFrom(signature)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.CopyFrom(request.model_spec)
        response.metadata["signature_def"].Pack(signatures)
        return response


@contextlib.contextmanager
def _grpc_server(served):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        _PredictionService(served), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)


def test_clients_end_to_end(served, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    npz = str(tmp_path / "examples.npz")
    np.savez(npz, **served["examples"])
    with _rest_server(served) as url:
        for extra in ([], ["--row-format"]):
            code = rest_client.main(["--url", url, "--model", MODEL_NAME, "--examples", npz, *extra])
            assert code == 0
            outputs = json.loads(capsys.readouterr().out)
            np.testing.assert_allclose(outputs["logits"], served["logits"], atol=1e-5)
            np.testing.assert_array_equal(outputs["class_ids"], served["logits"].argmax(-1))
        with pytest.raises(RuntimeError, match="HTTP 404: Servable not found"):
            rest_client.send_rest_request(
                rest_client.predict_url(url, "other"), {"inputs": {}}
            )

    warmup.write_warmup_requests(served["path"], served["examples"], model_name="x", batch_size=4)
    with _grpc_server(served) as target:
        for source in (["--examples", npz], ["--warmup", served["path"]]):
            code = grpc_client.main(["--target", target, "--model", MODEL_NAME, *source])
            assert code == 0
            outputs = json.loads(capsys.readouterr().out)
            np.testing.assert_allclose(outputs["logits"], served["logits"], atol=1e-5)
        assert grpc_client.fetch_input_dtypes(target, MODEL_NAME, "serving_default") == {
            name: spec.dtype for name, spec in _input_specs(served["signature"]).items()
        }
        # NumPy's default int64 ids: cast to the signature's int32 by default.
        wide = str(tmp_path / "int64.npz")
        np.savez(wide, token_ids=served["examples"]["token_ids"].astype("int64"),
                 padding_mask=served["examples"]["padding_mask"])
        assert grpc_client.main(["--target", target, "--model", MODEL_NAME, "--examples", wide]) == 0
        outputs = json.loads(capsys.readouterr().out)
        np.testing.assert_allclose(outputs["logits"], served["logits"], atol=1e-5)
        # Without the cast the server rejects the int64 tensor.
        assert grpc_client.main(
            ["--target", target, "--model", MODEL_NAME, "--examples", wide, "--no-cast"]) == 2
        assert "INVALID_ARGUMENT: bad input token_ids" in capsys.readouterr().err
        with pytest.raises(ValueError, match="^nope: model 'student' has no such signature"):
            grpc_client.fetch_input_dtypes(target, MODEL_NAME, "nope")


def test_cli_help_and_errors(capsys, tmp_path):
    for client in (rest_client, grpc_client):
        with pytest.raises(SystemExit) as info:
            client.main(["--help"])
        assert info.value.code == 0
        assert "--model" in capsys.readouterr().out

    missing = str(tmp_path / "nope.npz")
    assert rest_client.main(["--model", "m", "--examples", missing]) == 2
    assert grpc_client.main(["--model", "m", "--examples", missing]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"rest_client: error: {missing}: examples file not found",
        f"grpc_client: error: {missing}: examples file not found",
    ]
    with pytest.raises(ValueError, match="differ in batch size"):
        rest_client.build_rest_request("s", {"a": np.zeros((2, 1)), "b": np.zeros((3, 1))})
    with pytest.raises(ValueError, match="differ in batch size"):
        grpc_client.build_predict_request("m", "s", {"a": np.zeros((2, 1)), "b": np.zeros((3, 1))})
    with pytest.raises(ConnectionError, match="cannot reach the server"):
        rest_client.send_rest_request("http://127.0.0.1:9/v1/models/m:predict", {}, timeout=2)


def test_a_server_that_never_answers_is_one_line(capsys, monkeypatch):
    import socket

    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with socket.socket() as silent:  # Accepts connections, never answers.
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        assert rest_client.main(["--url", url, "--model", "m", "--text", "hi",
                                 "--timeout", "0.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"rest_client: error: {url}/v1/models/m:predict: no answer within 0.5 s"), err


def test_a_warmup_record_that_is_not_a_prediction_log_is_one_line(tmp_path, capsys):
    folder = tmp_path / "1" / "assets.extra"
    folder.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(folder / "tf_serving_warmup_requests")) as writer:
        writer.write(b"\xff\xff not a protobuf")
    assert grpc_client.main(["--model", "m", "--warmup", str(tmp_path / "1")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "record 0 is not a PredictionLog" in err[0], err


def test_clients_on_export_model_output(tmp_path, monkeypatch):
    """The clients against what `kd_keras.export.export_model` writes."""
    from kd_keras.export import export_model

    ids = keras.Input((5,), dtype="int32", name="token_ids")
    mask = keras.Input((5,), dtype="int32", name="padding_mask")
    x = keras.layers.Embedding(30, 4)(ids) * keras.ops.expand_dims(
        keras.ops.cast(mask, "float32"), -1)
    logits = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(x))
    model = keras.Model({"token_ids": ids, "padding_mask": mask}, logits, name="pair")
    rng = np.random.default_rng(3)
    val = {
        "token_ids": rng.integers(0, 30, size=(16, 5)).astype("int32"),
        "padding_mask": (rng.random((16, 5)) > 0.3).astype("int32"),
    }
    export_model(
        model, str(tmp_path / "out"), formats=("saved_model",),
        validation_data=(val, rng.integers(0, 2, 16)), labels=["neg", "pos"],
        latency_runs=2,
    )
    version_dir = str(tmp_path / "out" / "saved_model" / "pair" / "1")
    signature = tf.saved_model.load(version_dir).signatures["serving_default"]
    served = {"signature": signature}
    records = warmup.read_warmup_requests(version_dir)
    assert records, "export_model wrote no warmup requests"
    for record in records:
        assert record.model_spec.name == "pair"
        examples = warmup.request_to_arrays(record)
        # The gRPC client builds exactly what TF Serving replays at load time.
        assert grpc_client.build_predict_request("pair", "serving_default", examples) == record
        rows = [i for i in range(16) if all(
            np.array_equal(val[k][i], examples[k][0]) for k in val)]
        assert rows, "warmup examples do not come from the validation data"
        expected = model.predict_on_batch({k: v[rows[:1]] for k, v in val.items()})
        body = json.loads(json.dumps(rest_client.build_rest_request("serving_default", examples)))
        for tensors in (
            _rest_decode(served, body["inputs"]),
            {k: tf.constant(v) for k, v in examples.items()},
        ):
            outputs = _run_decoded(served, tensors)
            np.testing.assert_allclose(outputs["logits"].numpy(), expected, atol=1e-5)
            label = ["neg", "pos"][int(expected.argmax())]
            assert outputs["classes"].numpy()[0].decode() == label


def test_string_inputs_for_a_raw_text_signature():
    """Raw text (e.g. the `serving_text` signature) travels as JSON strings
    over REST, `{"b64": ...}` for non-UTF-8 bytes, and DT_STRING over gRPC."""
    texts = np.array(["a fine film", "ennuyé", "x"])
    body = json.loads(json.dumps(rest_client.build_rest_request("serving_text", {"text": texts})))
    assert body["inputs"] == {"text": ["a fine film", "ennuyé", "x"]}
    raw = np.array([b"ok", b"\xff\xfe"], dtype=object)
    assert rest_client.build_rest_request("s", {"text": raw}, row_format=True)["instances"] == [
        {"text": "ok"}, {"text": {"b64": "//4="}}
    ]

    request = grpc_client.build_predict_request("m", "serving_text", {"text": texts})
    assert request.inputs["text"].dtype == tf.string.as_datatype_enum
    decoded = tf.make_ndarray(request.inputs["text"])
    assert [t.decode("utf-8") for t in decoded] == list(texts)
    lengths = tf.strings.length(tf.constant(decoded), unit="UTF8_CHAR").numpy()
    np.testing.assert_array_equal(lengths, [len(t) for t in texts])


def test_grpc_client_without_the_serving_extra(served, tmp_path, capsys, monkeypatch):
    """A missing `tensorflow-serving-api` is one line naming the extra."""
    for key in [k for k in sys.modules if k == "tensorflow_serving" or k.startswith("tensorflow_serving.")]:
        monkeypatch.setitem(sys.modules, key, None)
    monkeypatch.setitem(sys.modules, "tensorflow_serving", None)
    npz = str(tmp_path / "examples.npz")
    np.savez(npz, **served["examples"])
    assert grpc_client.main(["--model", MODEL_NAME, "--examples", npz, "--no-cast"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        'grpc_client: error: grpc_client needs tensorflow_serving: pip install "kd_keras[serving]"'
    ]


@pytest.fixture(scope="module")
def served_text(tmp_path_factory):
    """A text model exported with its tokenizer: `serving_text` takes sentences."""
    import tensorflow_text  # noqa: F401

    from kd_keras.data import WordPieceEncoder
    from kd_keras.export import TextExport
    from kd_keras.export import WordPiecePreprocessor
    from kd_keras.export import export_model
    from kd_keras.teachers import minilm_dir

    vocabulary = os.path.join(minilm_dir(), "vocab.txt")
    keras.utils.set_random_seed(4)
    ids = keras.Input((12,), dtype="int32", name="token_ids")
    h = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(30522, 4)(ids))
    model = keras.Model(ids, keras.layers.Dense(3)(h), name=MODEL_NAME)
    sentences = ["a gorgeous film", "Dull, far too long…", "", "très élégant 😀"]
    encoder = WordPieceEncoder(vocabulary, 12)
    out = str(tmp_path_factory.mktemp("serving_text") / "export")
    export_model(model, out, formats=("saved_model",), validation_data=encoder(sentences),
                 labels=["neg", "neutral", "pos"], text=TextExport(preprocessor=WordPiecePreprocessor(vocabulary, 12),
                                 validation_text=sentences,
                                 reference_inputs=encoder(sentences)),
                 latency_runs=0)
    path = os.path.join(out, "saved_model", MODEL_NAME, "1")
    signature = tf.saved_model.load(path).signatures["serving_text"]
    return {"path": path, "signature": signature, "signature_name": "serving_text",
            "sentences": sentences, "logits": model.predict(encoder(sentences), verbose=0)}


@pytest.mark.slow
def test_clients_send_raw_sentences(served_text, capsys, monkeypatch):
    """`--text` builds the `serving_text` request; the logits are the Keras
    model's on the pipeline's own ids for those sentences."""
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    sentences = served_text["sentences"]
    names = [["neg", "neutral", "pos"][i] for i in served_text["logits"].argmax(-1)]
    with _rest_server(served_text) as url:
        for extra in ([], ["--row-format"]):
            code = rest_client.main(["--url", url, "--model", MODEL_NAME, "--text", *sentences,
                                     *extra])
            assert code == 0
            outputs = json.loads(capsys.readouterr().out)
            np.testing.assert_allclose(outputs["logits"], served_text["logits"], atol=1e-5)
            assert outputs["classes"] == names
    with _grpc_server(served_text) as target:
        code = grpc_client.main(["--target", target, "--model", MODEL_NAME, "--text", *sentences])
        assert code == 0
        outputs = json.loads(capsys.readouterr().out)  # class names print as text
        np.testing.assert_allclose(outputs["logits"], served_text["logits"], atol=1e-5)
        assert outputs["classes"] == names
        # The raw-text warmup record replays as is, under its own signature.
        records = warmup.read_warmup_requests(served_text["path"])
        index = [r.model_spec.signature_name for r in records].index("serving_text")
        assert records[index] == grpc_client.build_predict_request(
            MODEL_NAME, "serving_text", grpc_client.text_examples([sentences[0]]))
    body = rest_client.build_rest_request("serving_text", rest_client.text_examples(sentences))
    assert body == {"signature_name": "serving_text", "inputs": {"text": sentences}}


def test_models_config_parses_and_points_under_the_mount_the_readme_gives():
    """`export/models.config` is a ModelServerConfig whose base_path lies
    under the folder the README's docker command mounts (the one holding
    OUT: a mount inside OUT would stay on the folder an export replaces)."""
    import re

    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    with open(os.path.join(REPO_ROOT, "export", "models.config"), encoding="utf-8") as f:
        config = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    with open(os.path.join(REPO_ROOT, "export", "README.md"), encoding="utf-8") as f:
        readme = f.read()
    mounts = re.findall(r'--mount type=bind,source="\$\(pwd\)([^"]*)",target=(\S+?)[,\s]', readme)
    models = [target for source, target in mounts if not source.endswith("models.config")]
    assert len(models) == 2 and set(models) == {"/exports"}, mounts  # one model, several
    target = models[0]
    assert model.base_path == f"{target}/OUT/saved_model/{model.name}"
    assert f"-e MODEL_BASE_PATH={target}/OUT/saved_model -e MODEL_NAME={model.name}" in readme


@contextlib.contextmanager
def _replying(status, body):
    """A local HTTP server that answers every POST with `status` and `body`."""
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server hook
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(status)
            self.end_headers()
            self.wfile.write(body.encode("utf-8"))

        def log_message(self, *args):
            pass

    with _rest_server(None, Handler) as url:
        yield url


@pytest.mark.parametrize("status, body, message", [
    (500, '"boom"', "HTTP 500: \"boom\""),
    (500, "[1]", "HTTP 500: [1]"),
    (200, "<html>proxy login</html>", "the answer is not JSON: '<html>proxy login</html>'"),
    (200, "[1, 2]", "response: expected a JSON object, got list"),
    (200, '{"predictions": 5}', "response: 'predictions' must be a list, got int"),
    (200, '{"predictions": [{"a": 1}, {"b": 2}]}', "rows name different outputs"),
])
def test_rest_replies_a_client_cannot_use_are_one_line_naming_the_url(
        capsys, monkeypatch, status, body, message):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with _replying(status, body) as url:
        assert rest_client.main(["--url", url, "--model", "m", "--text", "hi"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rest_client: error: ") and message in err[0], err
    if status == 500 or "JSON:" in message:
        assert f"{url}/v1/models/m:predict" in err[0]


def test_clients_refuse_what_would_change_or_lose_examples(capsys, tmp_path):
    for client in (rest_client, grpc_client):
        for limit in ("0", "-1", "x"):
            with pytest.raises(SystemExit) as info:
                client.main(["--model", "m", "--text", "a", "b", "--limit", limit])
            assert info.value.code == 2
            assert f"--limit: expected a whole number >= 1, got '{limit}'" in (
                capsys.readouterr().err)
    with pytest.raises(ValueError, match=r"examples\['x'\]: holds NaN or infinity"):
        rest_client.build_rest_request("s", {"x": np.array([[1.0, np.nan]])})
    for build in (lambda e: rest_client.build_rest_request("s", e),
                  lambda e: grpc_client.build_predict_request("m", "s", e)):
        with pytest.raises(ValueError, match=r"examples\['x'\]: holds no examples"):
            build({"x": np.zeros((0, 3))})
    # The signature's int32: an id past its range or a fraction is refused,
    # not wrapped (2**31 + 5 -> -2147483643) or truncated (1.7 -> 1).
    int32 = {"ids": tf.int32}
    for ids, message in ((np.array([[2**31 + 5]]), r"outside int32's range"),
                         (np.array([[1.7, 2.0]]), "non-whole numbers")):
        with pytest.raises(ValueError, match=message):
            grpc_client.build_predict_request("m", "s", {"ids": ids}, dtypes=int32)
    request = grpc_client.build_predict_request(
        "m", "s", {"ids": np.array([[1.0, 2**31 - 1]])}, dtypes=int32)
    assert tf.make_ndarray(request.inputs["ids"]).tolist() == [[1, 2**31 - 1]]


@contextlib.contextmanager
def _raw_server(answer):
    """A local TCP server that reads a request, sends `answer` (bytes, or
    nothing) and closes the connection: not an HTTP server."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve():
        with contextlib.suppress(OSError):
            connection, _ = listener.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        thread.join(timeout=10)


@pytest.mark.parametrize("answer, kind", [
    (b"\x00\x00\x18\x04\x00\x00\x00\x00\x00 gRPC frames", "BadStatusLine"),
    (b"", "RemoteDisconnected"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"outputs\"", "IncompleteRead"),
])
def test_an_answer_that_is_not_http_is_one_line(capsys, monkeypatch, answer, kind):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with _raw_server(answer) as url:
        assert rest_client.main(["--url", url, "--model", "m", "--text", "hi"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"rest_client: error: {url}/v1/models/m:predict: not a TF Serving REST answer "
        f"({kind}"), err


def test_examples_files_without_named_batches_are_one_line(capsys, tmp_path):
    npy, scalar = str(tmp_path / "one.npy"), str(tmp_path / "scalar.npz")
    np.save(npy, np.zeros((2, 5), "int32"))
    np.savez(scalar, token_ids=np.array(3))
    for client in (rest_client, grpc_client):
        for path, message in ((npy, "cannot read examples (one unnamed array; save an .npz"),
                              (scalar, "input 'token_ids' is one value, not a batch")):
            assert client.main(["--model", "m", "--examples", path, "--limit", "1"]) == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and err[0].startswith(
                f"{client.__name__[len('serving_'):]}: error: {path}: {message}"), err


def test_grpc_refuses_numbers_for_a_string_input():
    with pytest.raises(ValueError, match=r"examples\['text'\]: holds int64 values, but the "
                                         "signature takes strings"):
        grpc_client.build_predict_request("m", "serving_text", {"text": np.array([1, 2])},
                                          dtypes={"text": tf.string})
