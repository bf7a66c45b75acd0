"""export_model: five models to all three formats, tolerances, atomic output."""

import json
import os

import keras
import numpy as np
import pytest

from kd_keras.errors import DataError
from kd_keras.errors import KdKerasWarning
from kd_keras.errors import UsageError
from kd_keras.export import ExportMismatchError
from kd_keras.export import TextExport
from kd_keras.export import export_model
from kd_keras.export import report as report_lib
from kd_keras.export import tolerances
from kd_keras.files.hashing import sha256_path

MODELS = ("mlp", "cnn", "text_cnn", "two_inputs", "bert")
CONTRACT_KEYS = {
    "format", "quantization", "path", "size_bytes", "max_abs_diff",
    "top1_agreement", "accuracy", "latency_ms_p50", "latency_ms_p95",
}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n != "two_inputs" else n
             for n in MODELS])
def test_every_model_exports_to_every_format_within_tolerance(exported, name):
    case, out_dir, report = exported(name)
    with open(os.path.join(out_dir, "report.json")) as f:
        stored = json.load(f)
    # The file keeps paths relative to itself; the returned dict joins them.
    for a in stored["artifacts"]:
        assert not os.path.isabs(a["path"]) and ".." not in a["path"].split("/"), a["path"]
        a["path"] = os.path.join(out_dir, *a["path"].split("/"))
        if "companions" in a:  # a TFLite model's sidecar and labels.txt
            a["companions"] = {os.path.join(out_dir, *p.split("/")): sha
                               for p, sha in a["companions"].items()}
    assert stored == json.loads(json.dumps(report))
    produced = {(a["format"], a["quantization"]) for a in report["artifacts"]}
    expected = {("saved_model", "none")}
    for q in case.quantization:
        expected.add(("tflite", q))
        if q != "float16":
            expected.add(("onnx", q))
    assert produced == expected
    ref_acc = report["reference"]["accuracy"]
    assert report["reference"]["params"] == case.model.count_params()
    for a in report["artifacts"]:
        assert CONTRACT_KEYS <= set(a)
        assert os.path.dirname(a["path"]).startswith(out_dir)
        assert os.path.exists(a["path"]) and a["size_bytes"] > 0
        assert a["latency_ms_p50"] > 0 and a["latency_ms_p95"] >= a["latency_ms_p50"]
        assert a["latency_ms_p50_batch32"] > 0
        if a["quantization"] == "none":
            assert a["max_abs_diff"] <= 1e-4, a
        elif a["quantization"] == "float16":
            assert a["max_abs_diff"] <= 1e-2, a
        else:
            assert a["top1_agreement"] >= 0.98, a
            assert ref_acc - a["accuracy"] <= 0.01, a
        assert a["passed"], a
    for f in ("report.md", "report.png"):
        assert os.path.getsize(os.path.join(out_dir, f)) > 0
    leftovers = [d for d in os.listdir(os.path.dirname(out_dir)) if ".tmp-" in d or ".old-" in d]
    assert leftovers == []


def test_trained_models_are_worth_quantizing(exported):
    # The int8 checks are only meaningful on models that learned something.
    assert exported("mlp")[2]["reference"]["accuracy"] > 0.85
    assert exported("text_cnn")[2]["reference"]["accuracy"] > 0.65


def _independent_logits(fmt, path, inputs, batch_size):
    """Runs an artifact with the runtimes' own APIs, not kd_keras's.

    Batches match the report's protocol: dynamically quantized models
    compute activation ranges per batch, so the batch changes their logits.
    """
    if fmt == "saved_model":
        import tensorflow as tf

        fn = tf.saved_model.load(path).signatures["serving_default"]
        run = lambda b: fn(**{k: tf.constant(v) for k, v in b.items()})["logits"].numpy()  # noqa: E731
    elif fmt == "onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        run = lambda b: sess.run(["logits"], b)[0]  # noqa: E731
    else:
        from ai_edge_litert.interpreter import Interpreter

        runner = Interpreter(model_path=path).get_signature_runner("serving_default")
        run = lambda b: runner(**b)["logits"]  # noqa: E731
    n = len(next(iter(inputs.values())))
    return np.concatenate([
        run({k: v[i : i + batch_size] for k, v in inputs.items()})
        for i in range(0, n, batch_size)
    ]).astype(np.float32)


@pytest.mark.parametrize("name", ("mlp", "text_cnn"))
def test_report_matches_independent_measurement(exported, name):
    case, out_dir, report = exported(name)
    inputs = case.x_val if isinstance(case.x_val, dict) else {case.model.inputs[0].name: case.x_val}
    reference = np.asarray(case.model.predict(case.x_val, verbose=0), np.float64)
    # Float32 artifacts differ from Keras by rounding noise (~1e-6), where a
    # relative 10% means nothing; 1e-5 is still 10x under their tolerance.
    for a in report["artifacts"]:
        logits = _independent_logits(
            a["format"], a["path"], inputs, report["validation"]["batch_size"]
        ).astype(np.float64)
        diff = float(np.max(np.abs(logits - reference)))
        agreement = float(np.mean(logits.argmax(-1) == reference.argmax(-1)))
        accuracy = float(np.mean(logits.argmax(-1) == case.y_val))
        label = f"{a['format']}/{a['quantization']}"
        assert abs(diff - a["max_abs_diff"]) <= 0.1 * max(diff, a["max_abs_diff"]) + 1e-5, label
        assert abs(agreement - a["top1_agreement"]) <= 0.01, label
        assert abs(accuracy - a["accuracy"]) <= 0.01, label


def test_report_says_where_the_time_went(exported):
    _, out_dir, report = exported("two_inputs")
    with open(os.path.join(out_dir, "report.json")) as f:
        seconds = json.load(f)["seconds"]
    assert seconds == report["seconds"]
    # The parts of an export to every format, float only (see the exporter).
    assert set(seconds) == {"reference", "saved_model", "tflite/none", "onnx/convert",
                            "onnx/none", "verify", "latency", "report"}
    assert all(v >= 0 for v in seconds.values()) and seconds["verify"] > 0
    building, verifying = report_lib.verification_seconds(report)
    assert verifying == pytest.approx(seconds["verify"] + seconds["latency"], abs=1e-6)
    assert building == pytest.approx(sum(seconds.values()) - verifying, abs=1e-6)
    assert report_lib.verification_seconds({"artifacts": []}) == (None, None)


def _tiny_model():
    x = keras.Input((4,), name="features")
    return keras.Model(x, keras.layers.Dense(3)(x), name="tiny")


def test_mismatch_fails_the_export_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setitem(tolerances.TOLERANCES, "float16", {"max_abs_diff": 0.0})
    model = _tiny_model()
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32") * 10
    out = tmp_path / "out"
    with pytest.raises(ExportMismatchError, match="tflite/float16: max_abs_diff"):
        export_model(model, out, formats=("tflite",), quantization=("float16",),
                     validation_data=x, latency_runs=1)
    assert os.listdir(tmp_path) == []
    report = export_model(model, out, formats=("tflite",), quantization=("float16",),
                          validation_data=x, latency_runs=1, allow_mismatch=True)
    assert report["artifacts"][0]["passed"] is False
    assert report["artifacts"][0]["failures"]


def test_a_failed_conversion_leaves_no_progress_bar_open(tmp_path, monkeypatch):
    """An export that fails half-way closes its progress bar: a bar left
    open would make every later bar in the process (and the CLI's error
    line under it) print one line up."""
    from tqdm.auto import tqdm

    from kd_keras.export import tflite as tflite_export

    def fail(*args, **kwargs):
        raise RuntimeError("conversion failed")

    monkeypatch.setattr(tflite_export, "convert_saved_model", fail)
    with pytest.raises(RuntimeError, match="conversion failed") as info:
        export_model(_tiny_model(), tmp_path / "out", formats=("tflite",), latency_runs=0)
    # The traceback is still held (as a REPL or a notebook holds it), and
    # with it the export's frame: its bar must be closed all the same.
    assert info.value.__traceback__ is not None
    assert [bar for bar in list(tqdm._instances) if bar.desc == "export"] == []
    assert os.listdir(tmp_path) == []


def test_verbose_0_prints_nothing(tmp_path, capfd):
    """`kd-keras distill` with `verbose: 0` passes it on: no export bar."""
    export_model(_tiny_model(), tmp_path / "quiet", formats=("saved_model",), latency_runs=1,
                 verbose=0)
    assert "export" not in capfd.readouterr().err
    export_model(_tiny_model(), tmp_path / "shown", formats=("saved_model",), latency_runs=1)
    assert "export" in capfd.readouterr().err


def test_existing_versions_are_kept_and_never_overwritten(tmp_path):
    model = _tiny_model()
    out = str(tmp_path / "out")
    first = export_model(model, out, formats=("saved_model",), latency_runs=1)
    v1 = first["artifacts"][0]["path"]
    digest = sha256_path(v1)
    second = export_model(model, out, formats=("saved_model",), latency_runs=1)
    v2 = second["artifacts"][0]["path"]
    assert v1.endswith(os.path.join("saved_model", "tiny", "1"))
    assert v2.endswith(os.path.join("saved_model", "tiny", "2"))
    assert sha256_path(v1) == digest


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"formats": ("tflite", "coreml")}, UsageError, "^formats: unknown value 'coreml'"),
        ({"formats": ()}, UsageError, "^formats: no value given"),
        ({"quantization": ("int4",)}, UsageError, "^quantization: unknown value 'int4'"),
        ({"quantization": ("int8",)}, UsageError,
         "^representative_data: required by quantization 'int8'"),
        ({"quantization": ("int8",), "representative_data": np.zeros((8, 5), "float32")},
         DataError, r"^representative_data: input 'features' has shape \(8, 5\)"),
        ({"validation_data": {"feature": np.zeros((8, 4))}}, DataError,
         "^validation_data: missing input 'features'"),
        ({"validation_data": (np.zeros((8, 4)), np.zeros(7))}, DataError,
         "^validation_data: 8 inputs but 7 labels"),
        ({"validation_data": (np.zeros((8, 4)), np.full(8, 3))}, DataError,
         r"^validation_data: label 3 \(example 0\) is out of range: labels must be -1 "
         r"\(unlabeled\) or in \[0, 2\] \(the model outputs 3 logits\)$"),
        ({"validation_data": (np.zeros((8, 4)), np.full(8, 0.5))}, DataError,
         r"^validation_data: label 0.5 \(example 0\) is not a whole number"),
        ({"validation_data": (np.zeros((2, 4)), np.array(["a", "b"]))}, DataError,
         r"^validation_data: labels must be integer class ids, got <U1 values such as"),
        ({"labels": ["a", "b"]}, UsageError, "^labels: 2 names but the model outputs 3"),
        ({"labels": ["a", "b\nc", "d"]}, UsageError,
         r"^labels: class 1's name 'b\\nc' is empty or holds a line break"),
        ({"labels": ["a", "b", "a"]}, UsageError, r"^labels: 'a' is given twice \(classes 0 and 2\)"),
        ({"out_dir": "."}, UsageError, r"^out_dir: '\.' is the current folder"),
        ({"text": TextExport(preprocessor=str, validation_text=(["a", "b"], [0, 7]),
                             reference_inputs=np.zeros((2, 4), "float32"))}, DataError,
         r"^text.validation_text: label 7 \(example 1\) is out of range"),
        ({"text": TextExport(preprocessor=str, validation_text=(["a", "b"], [0.7, 1]),
                             reference_inputs=np.zeros((2, 4), "float32"))}, DataError,
         r"^text.validation_text: label 0.7 \(example 0\) is not a whole number"),
        ({"opset": 19}, UsageError, "^opset: ONNX opset 19 is unsupported"),
        ({"latency_runs": -1}, UsageError, "^latency_runs: must be >= 0, got -1"),
        ({"latency_runs": 10**20}, UsageError, "^latency_runs: must be at most 10000"),
        ({"text": {"tflite": True}}, UsageError,
         "^text: must be a kd_keras.export.TextExport, got dict"),
        ({"text": TextExport(tflite=True)}, UsageError,
         "^text.preprocessor: required by text.tflite=True"),
        ({"text": TextExport(preprocessor=str, tflite=True)}, UsageError,
         r"^text.validation_text: required by text.tflite=True"),
    ],
)
def test_bad_input_is_one_clear_line_and_writes_nothing(tmp_path, kwargs, error, message):
    kwargs = dict(kwargs)
    out_dir = kwargs.pop("out_dir", tmp_path / "out")
    with pytest.raises(error, match=message) as info:
        export_model(_tiny_model(), out_dir, **kwargs)
    assert "\n" not in str(info.value)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("values, message", [
    (np.full((4, 6), 2.5), r"^validation_data: input 'ids' holds non-whole numbers; the "
                           r"model takes int32$"),
    (np.full((4, 6), 2.0**31 + 5), r"^validation_data: input 'ids' holds values outside "
                                   r"int32's range \[-2147483648, 2147483647\]$"),
])
def test_values_an_integer_input_would_change_are_refused(tmp_path, values, message):
    # Cast silently, they would be checked as other ids than the file holds.
    x = keras.Input((6,), dtype="int32", name="ids")
    model = keras.Model(x, keras.layers.Dense(2)(keras.ops.cast(x, "float32")))
    with pytest.raises(DataError, match=message):
        export_model(model, tmp_path / "out", formats=("onnx",), validation_data=(values, None))
    assert os.listdir(tmp_path) == []


def test_text_options_are_checked_when_made():
    with pytest.raises(UsageError, match="^text.tflite: must be true or false, got 'yes'"):
        TextExport(tflite="yes")
    with pytest.raises(UsageError, match="^text.preprocessor: must be a callable"):
        TextExport(preprocessor="vocab.txt")


def test_model_must_be_a_keras_model(tmp_path):
    with pytest.raises(UsageError, match="^model: must be a keras.Model, got str"):
        export_model("student.keras", tmp_path / "out")


def test_unwritable_output_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(UsageError, match="not writable") as info:
        export_model(_tiny_model(), blocker / "out", formats=("onnx",))
    assert str(info.value).startswith(str(blocker / "out") + ": ")
    assert sorted(os.listdir(tmp_path)) == ["file"]


# Only [batch, classes] logits from numeric, finite inputs.


def _model(kind):
    x = keras.Input((4,), name="features")
    if kind == "no_class_axis":
        return keras.Model(x, keras.layers.Reshape(())(keras.layers.Dense(1)(x)), name="m")
    if kind == "sequence":
        return keras.Model(x, keras.layers.Reshape((2, 2))(x), name="m")
    if kind == "one_logit":
        return keras.Model(x, keras.layers.Dense(1)(x), name="m")
    if kind == "two_outputs":
        return keras.Model(x, [keras.layers.Dense(3)(x), keras.layers.Dense(2)(x)], name="m")
    text = keras.Input((), dtype="string", name="text")
    vectorize = keras.layers.TextVectorization(max_tokens=20, output_sequence_length=4)
    vectorize.adapt(["a b c", "d e f"])
    h = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(20, 4)(vectorize(text)))
    return keras.Model(text, keras.layers.Dense(2)(h), name="m")


@pytest.mark.parametrize("kind, message", [
    ("no_class_axis", r"^model 'm': output has shape \('batch',\); expected \[batch, classes\]"),
    ("sequence", r"^model 'm': output has shape \('batch', 2, 2\); expected \[batch, classes\]"),
    ("one_logit", r"^model 'm': output has shape \('batch', 1\): 1 class; expected"),
    ("two_outputs", r"^model 'm': has 2 outputs \["),
    ("string_input", r"^model 'm': input 'text' takes strings \(string\); exported models take"),
])
def test_a_model_that_is_not_batch_by_classes_logits_is_refused(tmp_path, kind, message):
    # Without the check, a [batch] output "passed" every artifact and the
    # report counted the validation rows as classes.
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    with pytest.raises(UsageError, match=message) as info:
        export_model(_model(kind), tmp_path / "out", formats=("onnx",), validation_data=x)
    assert "\n" not in str(info.value)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_data_is_refused(tmp_path, bad):
    # Before: an AssertionError from onnxruntime's int8 calibration.
    clean = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    x = clean.copy()
    x[7, 2] = bad
    for key in ("representative_data", "validation_data"):
        data = {"representative_data": clean, "validation_data": clean, key: x}
        with pytest.raises(DataError, match=f"^{key}: input 'features' holds NaN or inf in 1 "
                                            r"example\(s\) \(the first is example 7\)"):
            export_model(_tiny_model(), tmp_path / "out", formats=("onnx",),
                         quantization=("int8",), **data)
    assert os.listdir(tmp_path) == []


def test_a_distiller_is_refused_with_the_student_to_export(tmp_path):
    import kd_keras

    teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    distiller = kd_keras.Distiller(teacher, _tiny_model())
    with pytest.raises(UsageError, match=r"is a Distiller, which trains its student; "
                                         r"export the student \(distiller.student\)$"):
        export_model(distiller, tmp_path / "out", formats=("saved_model",))
    assert os.listdir(tmp_path) == []


def test_an_input_keras_named_is_warned_about_and_a_named_one_is_not(tmp_path):
    unnamed = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    with pytest.warns(KdKerasWarning, match=r"input '(keras_tensor|input_layer)(_\d+)?': a name Keras "
                                         r"generated.*keras.Input\(shape, name=...\)"):
        export_model(unnamed, tmp_path / "a", formats=("saved_model",), latency_runs=0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        export_model(_tiny_model(), tmp_path / "b", formats=("saved_model",), latency_runs=0)
