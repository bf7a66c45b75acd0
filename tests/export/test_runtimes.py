"""`kd_keras.export.runtimes`: each runtime gives every output of the
signature it was asked for (what `kd-keras predict` reads), and refuses a
signature the artifact lacks in one line."""

import os

import numpy as np
import pytest

from kd_keras.export.runtimes import MissingSignatureError
from kd_keras.export.runtimes import get_runtime
from kd_keras.export.runtimes import load_runtime

pytestmark = pytest.mark.slow


def _softmax64(logits):
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def _paths(text_export):
    out = text_export.out_dir
    return {
        "saved_model": os.path.join(out, "saved_model", "text_student", "1"),
        "tflite": os.path.join(out, "tflite", "model_text.tflite"),
    }


@pytest.mark.parametrize("format", ["saved_model", "tflite"])
def test_text_outputs_are_logits_probabilities_and_class_names(text_export, format):
    texts = text_export.texts[:40]
    reference = text_export.keras_logits(texts)
    with load_runtime(format, _paths(text_export)[format], "serving_text") as runtime:
        out = runtime.outputs({"text": np.array(texts, dtype=object)})
        logits = runtime.run({"text": np.array(texts, dtype=object)})
    assert {"logits", "probabilities", "classes"} <= set(out)
    np.testing.assert_allclose(out["logits"], reference, atol=1e-4)
    np.testing.assert_array_equal(logits, np.asarray(out["logits"], np.float32))
    np.testing.assert_allclose(out["probabilities"], _softmax64(out["logits"]), atol=1e-6)
    names = [c.decode() if isinstance(c, bytes) else c for c in out["classes"]]
    assert names == [["neg", "pos"][i] for i in reference.argmax(-1)]


def test_a_missing_signature_is_one_line_naming_what_the_artifact_has(text_export):
    out = text_export.out_dir
    ids_only = os.path.join(out, "saved_model", "text_student", "1")
    with pytest.raises(MissingSignatureError, match=r"has no serving_ids signature "
                                                    r"\(it has serving_default, serving_text\)"):
        load_runtime("saved_model", ids_only, "serving_ids")
    # The float model's sidecar names serving_default: a signature asked for
    # wins over it, and is refused when the file lacks it.
    float_model = os.path.join(out, "tflite", "model.tflite")
    with pytest.raises(MissingSignatureError, match=r"model.tflite: has no serving_text "
                                                    r"signature \(it has serving_default\)"):
        load_runtime("tflite", float_model, "serving_text")
    with load_runtime("tflite", float_model) as runtime:  # The sidecar's, by default.
        ids = text_export.encoder(text_export.texts[:5])
        assert runtime.run({"token_ids": ids}).shape == (5, 2)


def test_a_file_mediapipe_cannot_load_is_an_error_naming_it(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"not a flatbuffer")
    runtime = get_runtime("mediapipe")
    with pytest.raises(RuntimeError, match=r"model.tflite: MediaPipe's TextClassifier cannot "
                                           r"load it \("):
        runtime.load(str(path))
    assert runtime.process_id is None  # Its child is gone with it.
