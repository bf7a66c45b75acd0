"""Every built-in text student survives `quantization: int8` in TFLite and ONNX.

Each student is trained briefly on the movie-review sentences (their first
`SEQ_LEN` ids, padding included), exported with
int8 only, and both artifacts are run here, outside kd_keras's runtimes
(the LiteRT interpreter and an ONNX Runtime session opened directly): their
top-1 decisions must agree with the Keras model's on >= 98% of the held-out
sentences and lose at most one point of accuracy, computed with NumPy.
The text CNN is also exported with a pruned vocabulary
(`student.prune_vocabulary`). Without the int8 recipes (`kd_keras.export.int8_recipes`) the transformer
student's full int8 artifacts agreed on about 81% of them in both formats
(measured with 32 ids).
"""

import json
import os

import keras
import numpy as np
import pytest

from kd_keras.export import export_model
from kd_keras.students import build_student
from kd_keras.students import prune_vocabulary
from kd_keras.students import used_vocabulary
from kd_keras.students.registry import TEXT_STUDENTS

pytestmark = pytest.mark.slow

VOCAB = 5000
SEQ_LEN = 16
TRAIN = 4000
OPTIONS = {
    "text_cnn": {"embedding_dim": 32, "filters": 32},
    "dilated_cnn": {"embedding_dim": 32, "filters": 32, "deep_filters": 32},
    "bigru": {"embedding_dim": 16, "units": 8},
    "tiny_bert": {"num_layers": 2, "num_heads": 2, "hidden_dim": 32, "intermediate_dim": 64},
    "mlp": {"hidden_units": (32,), "embedding_dim": 32},
}


def _trained(architecture, data, pruned=False):
    keras.utils.set_random_seed(0)

    def build(size):
        return build_student(architecture, 2, vocab_size=size, sequence_length=SEQ_LEN,
                             **OPTIONS[architecture])

    x = data["x_train"][:TRAIN, :SEQ_LEN]
    model = (prune_vocabulary(build, used_vocabulary(x, VOCAB)) if pruned
             else build(VOCAB))
    model.compile(keras.optimizers.Adam(3e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data["x_train"][:TRAIN, :SEQ_LEN], data["y_train"][:TRAIN], epochs=3,
              batch_size=64, verbose=0)
    return model


def _tflite_logits(path, ids):
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=path).get_signature_runner("serving_default")
    return np.concatenate([runner(token_ids=ids[i : i + 32])["logits"]
                           for i in range(0, len(ids), 32)])


def _onnx_logits(path, ids):
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(["logits"], {"token_ids": ids[i : i + 32]})[0]
                           for i in range(0, len(ids), 32)])


@pytest.mark.parametrize("architecture, pruned",
                         [(a, False) for a in TEXT_STUDENTS] + [("text_cnn", True)])
def test_int8_artifacts_keep_the_decisions(architecture, pruned, rt_polarity, tmp_path):
    """`pruned`: the text CNN behind a `VocabularyMap` (its table is an
    int32 gather in both formats)."""
    data = rt_polarity
    model = _trained(architecture, data, pruned)
    x_val, y_val = data["x_val"][:, :SEQ_LEN], data["y_val"]
    report = export_model(
        model, tmp_path / "export", formats=("tflite", "onnx"), quantization=("int8",),
        representative_data=data["x_train"][:200, :SEQ_LEN], validation_data=(x_val, y_val),
        latency_runs=0, allow_mismatch=True,
    )
    reference = np.asarray(model.predict(x_val, batch_size=256, verbose=0), np.float64)
    reference_accuracy = np.mean(reference.argmax(-1) == y_val)
    assert reference_accuracy > 0.6  # The student learned something.
    runs = {"tflite": _tflite_logits, "onnx": _onnx_logits}
    artifacts = {a["format"]: a for a in report["artifacts"]}
    assert sorted(artifacts) == ["onnx", "tflite"]
    for fmt, artifact in artifacts.items():
        logits = np.asarray(runs[fmt](artifact["path"], x_val), np.float64)
        top1 = logits.argmax(-1)
        agreement = np.mean(top1 == reference.argmax(-1))
        drop = reference_accuracy - np.mean(top1 == y_val)
        assert agreement >= 0.98, (fmt, artifact["recipe"], agreement)
        assert drop <= 0.01 + 1e-9, (fmt, artifact["recipe"], drop)
        assert artifact["passed"], artifact["failures"]
        assert artifact["top1_agreement"] == pytest.approx(agreement)
    if architecture in ("text_cnn", "dilated_cnn"):  # Full integer where it holds.
        assert artifacts["tflite"]["recipe"] == artifacts["onnx"]["recipe"] == "full int8"
    sidecar = os.path.splitext(artifacts["tflite"]["path"])[0] + ".json"
    with open(sidecar) as f:
        assert json.load(f)["recipe"] == artifacts["tflite"]["recipe"]
