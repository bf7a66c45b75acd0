"""`kd-keras export --vocabulary --text-data`: a text student exported by the
command gets the raw-text artifacts, MediaPipe's included, verified on the
sentences given."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from kd_keras.cli import main
from kd_keras.data import WordPieceEncoder
from kd_keras.students import text_cnn
from kd_keras.teachers import minilm_dir

SEQ = 16
SENTENCES = ["a gorgeous, witty, moving film", "dull and far too long", "the plot is thin",
             "i loved every minute of it", "an utter waste of time", "quietly brilliant",
             "the actors seem bored", "a warm and funny story"] * 4


@pytest.fixture(scope="module")
def text_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("text_export")
    vocab = os.path.join(minilm_dir(), "vocab.txt")
    keras.utils.set_random_seed(0)
    model = text_cnn(2, vocab_size=30522, sequence_length=SEQ, embedding_dim=8, filters=8,
                     dropout=0.0)
    model.save(str(root / "student.keras"))
    data = root / "sentences.tsv"
    data.write_text("".join(f"{t}\t{['neg', 'pos'][i % 2]}\n" for i, t in enumerate(SENTENCES)))
    return root, vocab, model


def test_the_text_artifacts_are_written_and_match_numpy(text_export, capsys):
    from kd_keras.export.runtimes import load_runtime

    root, vocab, model = text_export
    out = root / "out"
    status = main(["export", str(root / "student.keras"), str(out), "--formats", "tflite",
                   "--vocabulary", vocab, "--text-data", str(root / "sentences.tsv"),
                   "--labels", "neg", "pos", "--latency-runs", "0"])
    assert status == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    kinds = {(a["format"], a["quantization"], a.get("validation")) for a in report["artifacts"]}
    assert {("mediapipe", "none", "text"), ("tflite", "none", "text")} <= kinds
    assert all(a["passed"] for a in report["artifacts"])
    # Reference: the Keras student on the pipeline's ids, softmax in float64.
    logits = model.predict(WordPieceEncoder(vocab, SEQ)(SENTENCES[:8]), verbose=0)
    z = logits.astype(np.float64) - logits.max(-1, keepdims=True)
    expected = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    # MediaPipe's own classifier (cut off from the network: it logs usage).
    with load_runtime("mediapipe", str(out / "mediapipe" / "model.tflite")) as runtime:
        probabilities = runtime.run({"text": SENTENCES[:8]})
        assert runtime.class_names == ["neg", "pos"]
    np.testing.assert_allclose(probabilities, expected, atol=1e-4)
    assert main(["verify", str(out)]) == 0


@pytest.mark.parametrize("extra, message", [
    (["--text-data", "SENTENCES"], "--text-data: needs --vocabulary"),
    (["--vocabulary", "VOCAB"], "--vocabulary: needs --text-data"),
    (["--vocabulary", "VOCAB", "--text-data", "BAD"], "bad.tsv: line 2: unknown label 'maybe'"),
    (["--vocabulary", "VOCAB", "--text-data", "IDS", "NOLABELS"],
     "ids.tsv: line 2: unknown label '2' (class ids 0..1)"),
    (["--vocabulary", "VOCAB", "--text-data", "SUPERSCRIPT", "NOLABELS"],
     "superscript.tsv: line 1: unknown label '²' (class ids 0..1)"),
    (["--vocabulary", "VOCAB", "--text-data", "SENTENCES", "--labels", "LATIN1"],
     "latin1.txt: line 1: not valid UTF-8 text (at byte 1); class names (--labels) must be UTF-8"),
    (["--text-ids", "SENTENCES"], "--text-ids: needs --vocabulary"),
    (["--vocabulary", "VOCAB", "--text-data", "SENTENCES", "--text-ids", "SHORT_IDS"],
     "--text-ids 'SHORT_IDS': 3 rows for the 32 sentences of --text-data 'SENTENCES'"),
    (["--labels", "pos", "pos"], "labels: 'pos' is given twice (classes 0 and 1)"),
    (["--labels", "neg", ""], "labels: class 1's name '' is empty or holds a line break"),
])
def test_text_options_are_checked_in_one_line(text_export, tmp_path, capsys, extra, message):
    root, vocab, _ = text_export
    (tmp_path / "bad.tsv").write_text("fine\tpos\nodd\tmaybe\n")
    (tmp_path / "ids.tsv").write_text("fine\t1\nodd\t2\n")
    (tmp_path / "superscript.tsv").write_text("odd\t²\n")
    (tmp_path / "latin1.txt").write_bytes("négatif\npositif\n".encode("latin-1"))
    np.save(tmp_path / "short_ids.npy", np.ones((3, SEQ), "int32"))
    paths = {"SENTENCES": str(root / "sentences.tsv"), "VOCAB": vocab,
             "BAD": str(tmp_path / "bad.tsv"), "IDS": str(tmp_path / "ids.tsv"),
             "SUPERSCRIPT": str(tmp_path / "superscript.tsv"),
             "LATIN1": str(tmp_path / "latin1.txt"),
             "SHORT_IDS": str(tmp_path / "short_ids.npy")}
    names = [] if "NOLABELS" in extra else ["--labels", "neg", "pos"]
    status = main(["export", str(root / "student.keras"), str(tmp_path / "out"), "--formats",
                   "tflite", *names] + [paths.get(a, a) for a in extra if a != "NOLABELS"])
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    for name, path in paths.items():
        message = message.replace(f"'{name}'", repr(path))
    assert status == 2 and len(err) == 1 and message in err[0], err
    assert not os.path.exists(tmp_path / "out")


def test_verify_closes_mediapipe_before_exit_so_stderr_has_no_traceback(text_export, tmp_path,
                                                                          capsys):
    # MediaPipe's classifier left to its own `__del__` at interpreter exit
    # printed "Exception ignored ... TypeError" after a passing verify.
    root, vocab, _ = text_export
    out = tmp_path / "out"
    assert main(["export", str(root / "student.keras"), str(out), "--formats", "tflite",
                 "--vocabulary", vocab, "--text-data", str(root / "sentences.tsv"),
                 "--labels", "neg", "pos", "--latency-runs", "0"]) == 0, capsys.readouterr().err
    done = subprocess.run([sys.executable, "-m", "kd_keras", "verify", str(out),
                           "--latency-runs", "1"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "mediapipe" in done.stdout and "match" in done.stdout
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr


def test_text_ids_catch_a_vocabulary_unlike_trainings(text_export, tmp_path, capsys):
    """The same tokens in another order: every id differs. Checked against
    the exported tokenizer's own ids, every artifact agrees with Keras; the
    ids the training pipeline made for the sentences show the difference."""
    root, vocab, _ = text_export
    with open(vocab, encoding="utf-8") as f:
        tokens = f.read().splitlines()
    shuffled = tmp_path / "shuffled.txt"
    shuffled.write_text("\n".join(tokens[:5] + tokens[5:][::-1]) + "\n", encoding="utf-8")
    np.save(tmp_path / "ids.npy", WordPieceEncoder(vocab, SEQ)(SENTENCES).astype("int32"))
    args = ["export", str(root / "student.keras"), None, "--formats", "saved_model",
            "--vocabulary", str(shuffled), "--text-data", str(root / "sentences.tsv"),
            "--labels", "neg", "pos", "--latency-runs", "0"]
    args[2] = str(tmp_path / "unchecked")
    assert main(args) == 0, capsys.readouterr().err
    assert "a --vocabulary unlike training's shows only in their accuracy" in (
        capsys.readouterr().out)
    args[2] = str(tmp_path / "checked")
    assert main(args + ["--text-ids", str(tmp_path / "ids.npy")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and "saved_model/none/text: max_abs_diff" in err[0], err
    assert not os.path.exists(tmp_path / "checked")
