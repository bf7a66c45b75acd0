"""`kd-keras export` and `kd-keras verify` end to end, plus their errors."""

import os

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

from kd_keras.cli import main


@pytest.fixture(scope="module")
def digits_files(tmp_path_factory):
    d = load_digits()
    x = (d.data / 16.0).astype("float32")
    y = d.target
    keras.utils.set_random_seed(0)
    inp = keras.Input((64,), name="pixels")
    model = keras.Model(inp, keras.layers.Dense(10)(keras.layers.Dense(32, activation="relu")(inp)))
    model.compile(keras.optimizers.Adam(3e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:1400], y[:1400], epochs=30, batch_size=64, verbose=0)
    root = tmp_path_factory.mktemp("cli")
    model.save(root / "student.keras")
    np.save(root / "calib.npy", x[:200])
    np.save(root / "calib_8x8.npy", x[:200].reshape(-1, 8, 8))
    np.savez(root / "val.npz", pixels=x[1400:], y=y[1400:])
    (root / "broken.keras").write_bytes(b"not a zip archive")
    return root


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_export_then_verify_then_tamper(digits_files, capsys, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = _run(
        capsys, "export", digits_files / "student.keras", out,
        "--formats", "tflite", "onnx", "--quantization", "none", "int8",
        "--representative-data", digits_files / "calib.npy",
        "--validation-data", digits_files / "val.npz", "--latency-runs", "2",
    )
    assert code == 0, err
    assert "| tflite | int8 |" in stdout
    assert sorted(os.listdir(out / "tflite")) == ["model.json", "model.tflite", "model_int8.json", "model_int8.tflite"]
    code, stdout, _ = _run(capsys, "verify", out, "--latency-runs", "0")
    assert code == 0 and "all 4 artifact(s) match" in stdout
    with open(out / "onnx" / "model.onnx", "ab") as f:
        f.write(b"\0")
    code, stdout, _ = _run(capsys, "verify", out, "--latency-runs", "0")
    assert code == 1
    assert "FAILED onnx/none: onnx/model.onnx was altered (sha256)" in stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.keras"], "{root}/missing.keras: model file does not exist"),
        (["broken.keras"],
         "{root}/broken.keras: cannot load the model (damaged .keras archive: not a zip file)"),
        (["student.keras", "--formats", "tfjs"],
         "--formats: unknown value 'tfjs' (known: saved_model, tflite, onnx)"),
        (["student.keras", "--quantization", "int3"], "--quantization: unknown value 'int3'"),
        (["student.keras", "--quantization", "int8"],
         "--representative-data: required by --quantization int8"),
        (["student.keras", "--quantization", "int8", "--representative-data", "nope.npy"],
         "--representative-data '{root}/nope.npy': file does not exist"),
        (["student.keras", "--opset", "19"], "--opset: must be in 7..18, got 19"),
        (["student.keras", "--latency-runs", "-1"], "--latency-runs: must be >= 0, got -1"),
        (["student.keras", "--quantization", "int8", "--representative-data", "calib_8x8.npy"],
         "--representative-data '{root}/calib_8x8.npy': input 'pixels' has shape (200, 8, 8), "
         "but the model expects ('batch', 64)"),
        (["student.keras", "--integer-io"],
         "--integer-io: applies to the int8 TFLite model only; add --formats tflite and "
         "--quantization int8"),
        (["student.keras", "--name", "a/b"],
         "name: 'a/b' is not a TF Serving model name (letters, digits, '_', '.' and '-', "
         "not starting with '.'): clients call the model by it"),
        (["student.keras", "--formats", "onnx", "--vocabulary", "vocab.txt"],
         "--vocabulary: the raw-text artifacts are the SavedModel's and TFLite's (and "
         "MediaPipe's); --formats onnx makes none"),
    ],
)
def test_export_bad_input(digits_files, capsys, tmp_path, args, message):
    argv = [digits_files / args[0], tmp_path / "out", *args[1:]]
    argv = [digits_files / a if str(a).endswith((".npz", ".npy")) else a for a in argv]
    code, _, err = _run(capsys, "export", *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("kd-keras export: error: " + message.format(root=digits_files))
    assert os.listdir(tmp_path) == []


def test_unwritable_output_dir(digits_files, capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    code, _, err = _run(capsys, "export", digits_files / "student.keras", tmp_path / "file" / "out")
    assert code == 2 and "is not writable" in err and err.count("\n") == 1


def test_verify_missing_directory(capsys, tmp_path):
    code, _, err = _run(capsys, "verify", tmp_path / "nope")
    assert code == 2 and "does not exist" in err


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    out = capsys.readouterr().out
    for option in ("--formats", "--quantization", "--representative-data",
                   "--validation-data", "--labels", "--allow-mismatch"):
        assert option in out


def test_an_export_without_data_says_it_checked_random_inputs(digits_files, capsys, tmp_path):
    code, stdout, err = _run(capsys, "export", digits_files / "student.keras", tmp_path / "out",
                             "--formats", "onnx", "--latency-runs", "0")
    assert code == 0, err
    assert "checked on seeded random inputs (no --validation-data or --representative-data)" \
        in stdout
    code, stdout, err = _run(capsys, "export", digits_files / "student.keras", tmp_path / "o2",
                             "--formats", "onnx", "--latency-runs", "0",
                             "--validation-data", digits_files / "val.npz")
    assert code == 0 and "random inputs" not in stdout


def test_the_saved_model_path_and_the_name_clients_call_are_printed(digits_files, capsys,
                                                                    tmp_path):
    code, stdout, err = _run(capsys, "export", digits_files / "student.keras", tmp_path / "out",
                             "--formats", "saved_model", "--name", "digits-v2.1",
                             "--latency-runs", "0")
    assert code == 0, err
    path = tmp_path / "out" / "saved_model" / "digits-v2.1" / "1"
    assert f"TF Serving model 'digits-v2.1', version 1: {path}" in stdout.splitlines()
    assert os.path.isfile(path / "saved_model.pb")


def test_a_second_export_into_the_same_folder_is_refused(digits_files, capsys, tmp_path):
    # Two exports into one OUT_DIR each staged, then replaced the other's.
    import json
    import socket
    import subprocess
    import sys

    out = str(tmp_path / "out")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with open(out + ".lock", "w") as f:  # A live kd-keras export holds it.
            json.dump({"pid": sleeper.pid, "host": socket.gethostname()}, f)
        assert main(["export", str(digits_files / "student.keras"), out,
                     "--formats", "saved_model"]) == 2
        err = capsys.readouterr().err
        # The command's OUT_DIR, not export_model's out_dir argument.
        assert err.startswith(f"kd-keras export: error: OUT_DIR: {out} is being written by "
                              f"another kd-keras run (pid {sleeper.pid}"), err
        assert err.endswith("wait for it to finish, or write elsewhere\n")
        assert sorted(os.listdir(tmp_path)) == ["out.lock"]  # No staging folder left.
    finally:
        sleeper.kill()
        sleeper.wait()
    assert main(["export", str(digits_files / "student.keras"), out,
                 "--formats", "saved_model"]) == 0
    assert not os.path.exists(out + ".lock")  # Released when done.


def test_an_input_name_keras_generated_is_one_warning_line(capsys, tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)], name="m")
    model.save(tmp_path / "m.keras")  # saved, its input is 'input_layer'
    code, _, err = _run(capsys, "export", tmp_path / "m.keras", tmp_path / "out",
                        "--formats", "saved_model", "--latency-runs", "0")
    assert code == 0, err
    warning = [line for line in err.splitlines() if "warning" in line]
    assert warning == [
        "kd-keras export: warning: input 'input_layer': a name Keras generated, which the "
        "exported signatures take and clients must send; it changes when the model is built "
        "in another order. Name the input: keras.Input(shape, name=...)"], err
