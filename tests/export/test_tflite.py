"""TFLite conversion: builtin-only by default, integer-only I/O, sidecars."""

import gc
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kd_keras.export import TextExport
from kd_keras.export import export_model
from kd_keras.export.tflite import UnsupportedOpError
from kd_keras.export.tflite import frozen_heap


def test_flex_op_fails_loudly_naming_it(tmp_path):
    x = keras.Input((3, 3), name="matrix")
    y = keras.layers.Lambda(lambda t: tf.expand_dims(tf.linalg.det(t), -1))(x)
    model = keras.Model(x, keras.layers.Dense(2)(y))
    with pytest.raises(UnsupportedOpError, match="MatrixDeterminant.*select_tf_ops") as info:
        export_model(model, tmp_path / "out", formats=("tflite",))
    assert "\n" not in str(info.value)
    assert os.listdir(tmp_path) == []


def _is_frozen(obj):
    # Frozen objects leave the collector's generations. The freeze count is
    # no witness: it drops whenever another thread frees a frozen object.
    return not any(o is obj for o in gc.get_objects())


class _Sentinel:
    pass


def test_frozen_heap_thaws_what_it_froze_only():
    assert gc.get_freeze_count() == 0
    before = _Sentinel()
    with frozen_heap():
        assert _is_frozen(before)
        made_inside = _Sentinel()
        assert not _is_frozen(made_inside)
    assert not _is_frozen(before) and gc.get_freeze_count() == 0
    gc.freeze()  # A heap someone else froze stays frozen.
    try:
        theirs = before
        with frozen_heap():
            pass
        assert _is_frozen(theirs) and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_int8_with_integer_io_and_sidecars(cases, tmp_path):
    case = cases("mlp")
    report = export_model(
        case.model, tmp_path / "out", formats=("tflite",), quantization=("int8",),
        representative_data=case.representative, validation_data=(case.x_val, case.y_val),
        labels=case.options["labels"], integer_io=True, latency_runs=1,
    )
    (entry,) = report["artifacts"]
    assert entry["passed"], entry
    assert entry["top1_agreement"] >= 0.98
    folder = tmp_path / "out" / "tflite"
    meta = json.loads((folder / "model_int8.json").read_text())
    assert meta["inputs"]["pixels"]["dtype"] == "int8"
    assert meta["outputs"]["logits"]["dtype"] == "int8"
    assert meta["outputs"]["logits"]["scale"] > 0
    assert (folder / "labels.txt").read_text().split() == [str(i) for i in range(10)]

    # Independent check: quantize by hand with the stored scale/zero point.
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(folder / "model_int8.tflite")).get_signature_runner()
    inp, out = meta["inputs"]["pixels"], meta["outputs"]["logits"]
    q = np.clip(np.round(case.x_val / inp["scale"] + inp["zero_point"]), -128, 127).astype(np.int8)
    logits = (runner(pixels=q)["logits"].astype(np.float32) - out["zero_point"]) * out["scale"]
    ref = np.asarray(case.model(case.x_val))
    assert np.mean(logits.argmax(1) == ref.argmax(1)) >= 0.98


@pytest.mark.slow
def test_in_graph_tokenizer_runs_with_tftext_custom_ops(rt_polarity, tmp_path):
    from ai_edge_litert.interpreter import InterpreterWithCustomOps
    from tensorflow_text import tflite_registrar

    from kd_keras.export import verify_export
    from kd_keras.export.text import FastWordpiecePreprocessor
    from .conftest import minilm_vocabulary

    pre = FastWordpiecePreprocessor(minilm_vocabulary(), sequence_length=32)
    texts, labels = rt_polarity["texts"], rt_polarity["y_train"]
    ids = pre(tf.constant(list(texts[:2000])))["token_ids"].numpy()
    keras.utils.set_random_seed(0)
    x = keras.Input((32,), dtype="int32", name="token_ids")
    h = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(len(pre.vocabulary), 8)(x))
    model = keras.Model(x, keras.layers.Dense(2)(h), name="text_model")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(ids, labels[:2000], epochs=1, batch_size=64, verbose=0)

    out = tmp_path / "out"
    val_texts = list(rt_polarity["texts"][8000:8100])
    report = export_model(
        model, out, formats=("saved_model", "tflite"), labels=["neg", "pos"],
        validation_data=(ids[:100], labels[:100]),
        text=TextExport(preprocessor=pre, tflite=True,
                        validation_text=(val_texts, rt_polarity["y_val"][:100])),
        latency_runs=1,
    )
    text_path = os.path.join(str(out), "tflite", "model_text.tflite")
    text_entry = next(a for a in report["artifacts"] if a["path"] == text_path)
    assert text_entry["signature"] == "serving_text" and text_entry["passed"]
    assert text_entry["max_abs_diff"] <= 1e-4
    # The ids artifacts, the SavedModel's serving_text and model_text.tflite.
    assert [c.failures for c in verify_export(str(out), latency_runs=0)] == [()] * 4

    interp = InterpreterWithCustomOps(
        custom_op_registerers=tflite_registrar.SELECT_TFTEXT_OPS,
        model_path=str(out / "tflite" / "model_text.tflite"),
    )
    runner = interp.get_signature_runner("serving_text")
    sentences = ["a gorgeous , moving film", "dull and far too long"]
    got = runner(text=np.array([s.encode() for s in sentences]))
    ref = np.asarray(model(pre(tf.constant(sentences))["token_ids"]))
    np.testing.assert_allclose(got["logits"], ref, atol=1e-5)
    assert [c.decode() for c in got["classes"]] == [["neg", "pos"][i] for i in ref.argmax(1)]
