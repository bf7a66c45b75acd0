"""Tests for kd_keras.export.warmup: TF Serving warmup request files."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from kd_keras.errors import DataError
from kd_keras.errors import MissingFileError
from kd_keras.errors import UsageError
from kd_keras.export import warmup


def _tiny_saved_model(path):
    """A two-input classifier exported like a serving signature."""
    ids = keras.Input((6,), dtype="int32", name="token_ids")
    feats = keras.Input((4,), dtype="float32", name="features")
    x = keras.layers.Flatten()(keras.layers.Embedding(20, 3)(ids))
    x = keras.layers.Concatenate()([x, feats])
    model = keras.Model({"token_ids": ids, "features": feats}, keras.layers.Dense(3)(x))

    def serve(inputs):
        logits = model(inputs, training=False)
        return {
            "logits": logits,
            "probabilities": tf.nn.softmax(logits),
            "class_ids": tf.argmax(logits, axis=-1),
        }

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default",
        serve,
        input_signature=[
            {
                "token_ids": tf.TensorSpec([None, 6], tf.int32, name="token_ids"),
                "features": tf.TensorSpec([None, 4], tf.float32, name="features"),
            }
        ],
    )
    archive.write_out(path, verbose=False)
    return model


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("saved_model") / "tiny" / "1")
    model = _tiny_saved_model(path)
    rng = np.random.default_rng(1)
    examples = {
        # int64 on purpose: the writer must cast to the signature's int32.
        "token_ids": rng.integers(0, 20, size=(5, 6)),
        "features": rng.normal(size=(5, 4)).astype("float32"),
    }
    return path, model, examples


@pytest.fixture(scope="module")
def untouched(tmp_path_factory):
    """A SavedModel no test writes warmup requests into."""
    path = str(tmp_path_factory.mktemp("untouched") / "1")
    _tiny_saved_model(path)
    return path


def test_signature_inputs_are_read_from_the_protobuf(served):
    path, _, _ = served
    inputs = warmup.read_signature_inputs(path)
    assert inputs == {
        "token_ids": (tf.int32, [None, 6]),
        "features": (tf.float32, [None, 4]),
    }


def test_round_trip_matches_examples_and_runs_the_signature(served):
    path, model, examples = served
    written = warmup.write_warmup_requests(
        path, examples, model_name="tiny", num_requests=7, batch_size=2
    )
    assert written == os.path.join(path, "assets.extra", "tf_serving_warmup_requests")

    requests = warmup.read_warmup_requests(path)
    assert len(requests) == 7
    signature = tf.saved_model.load(path).signatures["serving_default"]
    for i, request in enumerate(requests):
        assert request.model_spec.name == "tiny"
        assert request.model_spec.signature_name == "serving_default"
        arrays = warmup.request_to_arrays(request)
        rows = np.arange(2 * i, 2 * i + 2) % 5  # wraps around 5 examples
        assert arrays["token_ids"].dtype == np.int32
        np.testing.assert_array_equal(arrays["token_ids"], examples["token_ids"][rows])
        np.testing.assert_array_equal(arrays["features"], examples["features"][rows])
        # What TF Serving would run on this record gives the Keras logits.
        served_logits = signature(**{k: tf.constant(v) for k, v in arrays.items()})
        expected = model.predict_on_batch(
            {"token_ids": examples["token_ids"][rows].astype("int32"),
             "features": examples["features"][rows]}
        )
        np.testing.assert_allclose(served_logits["logits"].numpy(), expected, atol=1e-5)


def test_records_are_raw_prediction_logs(served):
    """The file is a plain TFRecord of PredictionLog, as TF Serving reads it."""
    path, _, examples = served
    warmup.write_warmup_requests(path, examples, num_requests=3, model_name=None)
    records = list(tf.data.TFRecordDataset(warmup.warmup_file_path(path)))
    assert len(records) == 3
    log = prediction_log_pb2.PredictionLog.FromString(records[0].numpy())
    assert log.WhichOneof("log_type") == "predict_log"
    # model_name=None: the folder above the version directory, ".../tiny/1".
    assert log.predict_log.request.model_spec.name == "tiny"
    assert set(log.predict_log.request.inputs) == {"token_ids", "features"}
    assert log.predict_log.request.inputs["features"].tensor_shape.dim[0].size == 1


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"token_ids": np.zeros((2, 6), "int32")}, "missing ['features']"),
        (
            {"token_ids": np.zeros((2, 6), "int32"), "features": np.zeros((2, 5), "float32")},
            "'features'",
        ),
        (
            {"token_ids": np.zeros((2, 6), "int32"), "features": np.zeros((3, 4), "float32")},
            "differ in batch size",
        ),
        (
            {"token_ids": np.array([["a"] * 6]), "features": np.zeros((1, 4), "float32")},
            "'token_ids'",
        ),
    ],
)
def test_bad_examples_leave_nothing_behind(untouched, bad, message):
    path = untouched
    with pytest.raises(UsageError) as info:
        warmup.write_warmup_requests(path, bad)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert not os.path.exists(os.path.join(path, "assets.extra"))


def test_failed_rewrite_keeps_the_previous_file(served, monkeypatch):
    path, _, examples = served
    warmup.write_warmup_requests(path, examples, num_requests=2)
    before = open(warmup.warmup_file_path(path), "rb").read()

    def broken_writer(tmp_path):
        raise OSError("disk full")

    monkeypatch.setattr(warmup.tf.io, "TFRecordWriter", broken_writer)
    with pytest.raises(OSError):
        warmup.write_warmup_requests(path, examples, num_requests=4)
    assert open(warmup.warmup_file_path(path), "rb").read() == before
    assert os.listdir(os.path.join(path, "assets.extra")) == ["tf_serving_warmup_requests"]


def test_missing_and_corrupt_files_name_the_path(tmp_path, served):
    missing = str(tmp_path / "nothing")
    with pytest.raises(MissingFileError, match="saved_model.pb: no SavedModel here"):
        warmup.write_warmup_requests(missing, {"x": np.zeros((1, 1))})
    with pytest.raises(MissingFileError, match="tf_serving_warmup_requests: no warmup requests"):
        warmup.read_warmup_requests(missing)

    path, _, _ = served
    with pytest.raises(UsageError, match="saved_model.pb: signature 'predict' not found; available signatures"):
        warmup.write_warmup_requests(path, {"x": np.zeros((1, 1))}, signature_name="predict")
    with pytest.raises(UsageError, match="^num_requests: "):
        warmup.write_warmup_requests(path, {"x": np.zeros((1, 1))}, num_requests=0)

    corrupt = tmp_path / "corrupt"
    (corrupt / "assets.extra").mkdir(parents=True)
    (corrupt / "assets.extra" / "tf_serving_warmup_requests").write_bytes(b"not a tfrecord")
    with pytest.raises(DataError, match="tf_serving_warmup_requests: corrupt warmup file"):
        warmup.read_warmup_requests(str(corrupt))
