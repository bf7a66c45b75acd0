"""What TF Serving and a phone do with the raw-text artifacts: a fresh
process with only TensorFlow and TF-Text (no kd_keras, no KerasHub) runs the
SavedModel's `serving_text`; one with only the LiteRT interpreter and the
TF-Text custom ops runs `model_text*.tflite`. Both must classify sentences
as the Keras student does on the training pipeline's own ids."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from .conftest import EDGE_SENTENCES

pytestmark = pytest.mark.slow

GUARD = textwrap.dedent(
    """
    def check_modules():
        loaded = {m.split(".")[0] for m in sys.modules}
        assert not loaded & {"kd_keras", "keras_hub"}, sorted(loaded & {"kd_keras", "keras_hub"})
    """
)

SERVING = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops)
    """
) + GUARD + textwrap.dedent(
    """
    model_dir, texts_file, out_file = sys.argv[1:]
    with open(texts_file, encoding="utf-8") as f:
        texts = json.load(f)
    serve = tf.saved_model.load(model_dir).signatures["serving_text"]
    out = serve(text=tf.constant(texts))
    check_modules()
    np.savez(out_file, logits=out["logits"].numpy(),
             classes=out["classes"].numpy().astype("S"))
    """
)

PHONE = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from ai_edge_litert.interpreter import InterpreterWithCustomOps
    from tensorflow_text import tflite_registrar
    """
) + GUARD + textwrap.dedent(
    """
    texts_file, out_file, *models = sys.argv[1:]
    with open(texts_file, encoding="utf-8") as f:
        texts = json.load(f)
    results = {}
    for i, path in enumerate(models):
        interpreter = InterpreterWithCustomOps(
            custom_op_registerers=tflite_registrar.SELECT_TFTEXT_OPS,
            model_path=path, num_threads=1)
        runner = interpreter.get_signature_runner("serving_text")
        logits = []
        for text in texts:  # One sentence at a time, as an app would.
            out = runner(text=np.array([text.encode("utf-8")], dtype=object))
            logits.append(out["logits"][0])
        results[f"logits_{i}"] = np.stack(logits)
    check_modules()
    np.savez(out_file, **results)
    """
)


def _fresh(script, args, tmp_path):
    path = tmp_path / "consumer.py"
    path.write_text(script, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH="", TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, str(path), *args], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture
def sentences(text_export, tmp_path):
    texts = text_export.texts[:150] + EDGE_SENTENCES
    path = tmp_path / "texts.json"
    path.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    return texts, str(path), text_export.keras_logits(texts)


def _edge(array):
    return array[-len(EDGE_SENTENCES):]


def test_tf_serving_like_process_classifies_sentences(text_export, sentences, tmp_path):
    texts, texts_file, reference = sentences
    version_dir = os.path.join(text_export.out_dir, "saved_model", "text_student", "1")
    _fresh(SERVING, [version_dir, texts_file, str(tmp_path / "out.npz")], tmp_path)
    with np.load(tmp_path / "out.npz") as out:
        logits, classes = out["logits"], out["classes"]
    np.testing.assert_allclose(logits, reference, atol=1e-4)
    assert np.mean(logits.argmax(-1) == reference.argmax(-1)) == 1.0
    assert [c.decode() for c in classes] == [["neg", "pos"][i] for i in reference.argmax(-1)]


def test_litert_process_runs_the_text_tflite_files(text_export, sentences, tmp_path):
    texts, texts_file, reference = sentences
    folder = os.path.join(text_export.out_dir, "tflite")
    models = [os.path.join(folder, "model_text.tflite"),
              os.path.join(folder, "model_text_int8.tflite")]
    _fresh(PHONE, [texts_file, str(tmp_path / "out.npz"), *models], tmp_path)
    with np.load(tmp_path / "out.npz") as out:
        float_logits, int8_logits = out["logits_0"], out["logits_1"]
    expected = reference.argmax(-1)
    np.testing.assert_allclose(float_logits, reference, atol=1e-4)
    assert np.mean(float_logits.argmax(-1) == expected) == 1.0
    assert np.mean(int8_logits.argmax(-1) == expected) >= 0.98
    assert _edge(int8_logits.argmax(-1)).tolist() == _edge(expected).tolist()
