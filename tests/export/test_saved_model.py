"""SavedModel: TF Serving layout, signatures, and reload without kd_keras."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from kd_keras.export.warmup import read_warmup_requests
from kd_keras.export.warmup import request_to_arrays

FRESH_PROCESS = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops)

    args = sys.argv[1:]
    for path, inputs_file, out_file in zip(args[::3], args[1::3], args[2::3]):
        model = tf.saved_model.load(path)
        serve = model.signatures["serving_default"]
        with np.load(inputs_file) as data:
            inputs = {k: tf.constant(data[k]) for k in data.files if k != "text"}
            text = data["text"] if "text" in data.files else None
        outputs = {k: v.numpy() for k, v in serve(**inputs).items()}
        if text is not None:
            text_out = model.signatures["serving_text"](text=tf.constant(text))
            outputs.update({"text_" + k: v.numpy() for k, v in text_out.items()})
        assert not any(m.startswith("kd_keras") for m in sys.modules), "kd_keras imported"
        outputs = {k: v.astype("S") if v.dtype == object else v for k, v in outputs.items()}
        np.savez(out_file, **outputs)
    """
)


def _saved_model_cli(path):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    return subprocess.Popen(
        [cli, "show", "--dir", path, "--all"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _fresh_load(jobs, tmp_path):
    """One fresh interpreter loads every `(saved_model_dir, folder, inputs,
    text)` job and writes `folder/outputs.npz`."""
    argv = []
    for path, folder, inputs, text in jobs:
        arrays = dict(inputs)
        if text is not None:
            arrays["text"] = np.array(text)
        np.savez(folder / "inputs.npz", **arrays)
        argv += [path, str(folder / "inputs.npz"), str(folder / "outputs.npz")]
    script = tmp_path / "load.py"
    script.write_text(FRESH_PROCESS)
    env = dict(os.environ, PYTHONPATH="", TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.Popen(
        [sys.executable, str(script), *argv],
        cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _check(proc):
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    return out


@pytest.mark.slow
def test_serving_layout_signature_and_fresh_process_reload(exported, tmp_path):
    mlp, mlp_dir, mlp_report = exported("mlp")
    bert, bert_dir, bert_report = exported("bert")
    mlp_sm = mlp_report["artifacts"][0]["path"]
    bert_sm = bert_report["artifacts"][0]["path"]
    assert mlp_sm == os.path.join(mlp_dir, "saved_model", "digits_mlp", "1")
    assert bert_sm == os.path.join(bert_dir, "saved_model", "bert_student", "1")

    (tmp_path / "mlp").mkdir()
    (tmp_path / "bert").mkdir()
    x_mlp = {"pixels": mlp.x_val[:5]}
    x_bert = {k: v[:3].astype("int32") for k, v in bert.x_val.items()}
    sentences = ["a gorgeous, moving film", "dull and far too long", "fine"]
    procs = [
        _saved_model_cli(mlp_sm),
        _saved_model_cli(bert_sm),
        _fresh_load([(mlp_sm, tmp_path / "mlp", x_mlp, None),
                     (bert_sm, tmp_path / "bert", x_bert, sentences)], tmp_path),
    ]
    shown_mlp, shown_bert = _check(procs[0]), _check(procs[1])
    _check(procs[2])

    # saved_model_cli: named inputs with a dynamic batch, named outputs.
    default = shown_mlp.split("signature_def['serving_default']")[1]
    assert "inputs['pixels'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, 64)" in default
    for name, dtype in (("logits", "DT_FLOAT"), ("probabilities", "DT_FLOAT"),
                        ("class_ids", "DT_INT32"), ("classes", "DT_STRING")):
        assert f"outputs['{name}'] tensor_info:\n        dtype: {dtype}" in default
    assert "tensorflow/serving/predict" in default
    for name in ("token_ids", "segment_ids", "padding_mask"):
        assert f"inputs['{name}'] tensor_info:\n        dtype: DT_INT32\n        shape: (-1, -1)" in shown_bert
    text_sig = shown_bert.split("signature_def['serving_text']")[1]
    assert "inputs['text'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)" in text_sig

    # The fresh process (no kd_keras) gets the Keras model's outputs.
    with np.load(tmp_path / "mlp" / "outputs.npz") as out:
        ref = np.asarray(mlp.model(x_mlp["pixels"]))
        np.testing.assert_allclose(out["logits"], ref, atol=1e-5)
        e = np.exp(ref - ref.max(-1, keepdims=True))
        np.testing.assert_allclose(out["probabilities"], e / e.sum(-1, keepdims=True), atol=1e-5)
        np.testing.assert_array_equal(out["class_ids"], ref.argmax(-1))
        np.testing.assert_array_equal(out["classes"].astype(str), ref.argmax(-1).astype(str))
    with np.load(tmp_path / "bert" / "outputs.npz") as out:
        ref = np.asarray(bert.model(x_bert))
        np.testing.assert_allclose(out["logits"], ref, atol=1e-5)
        assert list(out["classes"].astype(str)) == [["neg", "pos"][i] for i in ref.argmax(-1)]
        pre = bert.options["text"].preprocessor
        ref_text = np.asarray(bert.model(pre(np.array(sentences))))
        np.testing.assert_allclose(out["text_logits"], ref_text, atol=1e-5)
        assert out["text_probabilities"].shape == (3, 2)


def test_warmup_requests_hold_validation_examples(exported):
    case, _, report = exported("mlp")
    requests = read_warmup_requests(report["artifacts"][0]["path"])
    assert len(requests) == 8
    first = requests[0]
    assert first.model_spec.name == "digits_mlp"
    assert first.model_spec.signature_name == "serving_default"
    np.testing.assert_array_equal(request_to_arrays(first)["pixels"], case.x_val[:1])
