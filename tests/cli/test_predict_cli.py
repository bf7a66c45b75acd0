"""`kd-keras predict`: sentences in, class and probability out, from the
exported SavedModel or TFLite file; one-line errors; a quiet command line
(`--help` imports no TensorFlow, native log lines hidden)."""

import io
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from export.conftest import export_text_model
from kd_keras.cli import main
from kd_keras.cli import predict

SENTENCES = ["a gorgeous , witty , moving film", "dull and far too long", "—",
             "Très élégant 😀", "word " * 40]
NATIVE_LOG = re.compile(r"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+|WARNING: All log messages before absl)",
                        re.M)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return export_text_model(str(tmp_path_factory.mktemp("predict") / "export"),
                             quantization=("none",), max_examples=300)


def _softmax(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _expected_lines(exported, sentences):
    """From the Keras student on the pipeline's ids, not from the artifact."""
    probabilities = _softmax(exported.keras_logits(sentences))
    return [(["neg", "pos"][p.argmax()], p.max(), s) for p, s in zip(probabilities, sentences)]


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["saved_model", "tflite"])
def test_prints_class_and_probability_per_sentence(exported, runtime, capsys):
    # A distill output folder holds the export in export/: both are accepted.
    run_dir = os.path.dirname(exported.out_dir)
    assert main(["predict", run_dir, *SENTENCES, "--runtime", runtime]) == 0
    lines = capsys.readouterr().out.rstrip("\n").split("\n")
    assert len(lines) == len(SENTENCES)
    for line, (name, probability, sentence) in zip(lines, _expected_lines(exported, SENTENCES)):
        got_name, got_probability, got_sentence = line.split("\t")
        assert (got_name, got_sentence) == (name, sentence)
        assert abs(float(got_probability) - probability) <= 6e-4


def test_a_sentence_with_a_line_break_or_a_tab_is_still_one_line(exported, capsys):
    sentences = ["great film\nawful plot", "tab\there", "back\\slash", "ok"]
    assert main(["predict", exported.out_dir, *sentences]) == 0
    lines = capsys.readouterr().out.rstrip("\n").split("\n")
    assert [line.split("\t")[2] for line in lines] == [
        "great film\\nawful plot", "tab\\there", "back\\\\slash", "ok"]
    for line, (name, _, _) in zip(lines, _expected_lines(exported, sentences)):
        assert line.split("\t")[0] == name


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["saved_model", "tflite"])
def test_empty_sentence_from_python(exported, runtime):
    # The command line refuses a blank SENTENCE; the library classifies one
    # ([CLS] [SEP] alone) as the Keras student does.
    [(name, probability)] = predict.predictions(exported.out_dir, [""], runtime=runtime)
    [(expected_name, expected_probability, _)] = _expected_lines(exported, [""])
    assert name == expected_name
    assert abs(probability - expected_probability) <= 6e-4


@pytest.mark.slow
def test_direct_artifacts(exported, capsys):
    model_root = os.path.join(exported.out_dir, "saved_model", "text_student")
    text_tflite = os.path.join(exported.out_dir, "tflite", "model_text.tflite")
    expected = [name for name, _, _ in _expected_lines(exported, SENTENCES[:2])]
    # The export's saved_model/ folder too: it holds one model.
    for artifact in (os.path.dirname(model_root), model_root, os.path.join(model_root, "1"),
                     text_tflite):
        assert main(["predict", artifact, *SENTENCES[:2]]) == 0
        out = capsys.readouterr().out.splitlines()
        assert [line.split("\t")[0] for line in out] == expected


@pytest.mark.slow
def test_errors_are_one_line(exported, tmp_path, capsys):
    fifo = tmp_path / "x.tflite"
    os.mkfifo(fifo)
    cases = [
        ([str(tmp_path / "nope"), "x"], "nope: no such file or folder"),
        ([os.path.join(exported.out_dir, "tflite", "model.tflite"), "x"],
         "model.tflite: has no serving_text signature; predict runs the model_text*.tflite "
         "files (a MediaPipe model.tflite runs in MediaPipe's TextClassifier)"),
        ([exported.out_dir, "x", "--runtime", "tflite", "--quantization", "int9"],
         "--quantization: unknown value 'int9'"),
        ([exported.out_dir, "x", "--runtime", "tflite", "--quantization", "int8"],
         "has no such raw-text artifact (it has saved_model/none, tflite/none)"),
        ([str(tmp_path), "x"], "holds no report.json, SavedModel or .tflite file"),
        ([exported.out_dir, "x", "--quantization", "int8"],
         "--quantization int8: chooses among the TFLite files of an export folder; give "
         "the folder with --runtime tflite"),
        ([os.path.join(exported.out_dir, "tflite", "model_text.tflite"), "x", "--runtime",
          "tflite", "--quantization", "int8"], "--quantization int8: chooses among"),
        ([os.path.join(exported.out_dir, "report.md"), "x"], "not a .tflite file"),
        (["/dev/null", "x"], "/dev/null: not a regular file or a folder"),
        ([str(fifo), "x"], "x.tflite: not a regular file or a folder"),
    ]
    for argv, message in cases:
        assert main(["predict", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("kd-keras predict: error: "), err
        assert message in err, err


def test_help_needs_no_tensorflow():
    code = ("import sys\nfrom kd_keras.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "predict" in done.stdout and done.stderr == ""


@pytest.mark.slow
def test_commands_hide_native_log_lines(exported):
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    plain = subprocess.run([sys.executable, "-c", "import tensorflow"], env=env,
                           capture_output=True, text=True, timeout=300)
    if not NATIVE_LOG.search(plain.stderr):
        pytest.skip("this TensorFlow prints no native log lines at start-up")
    done = subprocess.run(
        [sys.executable, "-m", "kd_keras", "predict", exported.out_dir, SENTENCES[0]],
        env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not NATIVE_LOG.search(done.stderr), done.stderr
    assert done.stdout.count("\n") == 1


class _Stdin:
    def __init__(self, data):
        self.buffer = io.BytesIO(data)


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["saved_model", "tflite"])
def test_a_dash_reads_one_sentence_per_line_from_standard_input(exported, runtime, capsys,
                                                                monkeypatch):
    # More lines than one model call takes, so the batches are joined in order.
    piped = [f"{SENTENCES[i % 2]} {i}" for i in range(predict.BATCH + 44)]
    data = "\r\n".join(piped[:5]) + "\n\n   \n" + "\n".join(piped[5:])  # blank lines skipped
    monkeypatch.setattr(sys, "stdin", _Stdin(data.encode("utf-8")))
    assert main(["predict", exported.out_dir, "first", "-", "last", "--runtime", runtime]) == 0
    lines = capsys.readouterr().out.rstrip("\n").split("\n")
    sentences = ["first", *piped, "last"]
    assert [line.split("\t")[2] for line in lines] == sentences
    expected = _expected_lines(exported, sentences)
    assert [line.split("\t")[0] for line in lines] == [name for name, _, _ in expected]
    for line, (_, probability, _) in zip(lines, expected):
        assert abs(float(line.split("\t")[1]) - probability) <= 6e-4


@pytest.mark.parametrize("data, argv, message", [
    (b"fine\n\xff bad\n", ["-"],
     "standard input: line 2: not valid UTF-8 text (at byte 0); sentences must be UTF-8"),
    (b"\n  \n", ["-"], "standard input: no sentences (one per line)"),
    (b"x\n", ["-", "-"], "SENTENCE: - (standard input) can be given once"),
])
def test_bad_standard_input_is_one_line(tmp_path, capsys, monkeypatch, data, argv, message):
    model = tmp_path / "model_text.tflite"  # resolved, never loaded: the input fails first
    model.write_bytes(b"")
    monkeypatch.setattr(sys, "stdin", _Stdin(data))
    assert main(["predict", str(model), *argv]) == 2
    err = capsys.readouterr().err
    assert err == f"kd-keras predict: error: {message}\n", err


def test_a_bad_artifact_is_reported_before_standard_input_is_read(tmp_path, capsys,
                                                                  monkeypatch):
    class Unread:
        @property
        def buffer(self):
            raise AssertionError("standard input was read")

    monkeypatch.setattr(sys, "stdin", Unread())
    assert main(["predict", str(tmp_path / "nope"), "-"]) == 2
    assert "nope: no such file or folder" in capsys.readouterr().err


def test_a_closed_standard_input_and_a_bom_and_numbering(tmp_path, capsys, monkeypatch):
    model = tmp_path / "model_text.tflite"
    model.write_bytes(b"")
    monkeypatch.setattr(sys, "stdin", None)
    assert main(["predict", str(model), "-"]) == 2
    assert capsys.readouterr().err == (
        "kd-keras predict: error: SENTENCE: - reads standard input, which is closed\n")
    assert predict.read_sentences(io.BytesIO(b"\xef\xbb\xbfgood\n")) == ["good"]
    # A bad sentence on the command line keeps its own number, after `-`.
    monkeypatch.setattr(sys, "stdin", _Stdin(b"a\nb\nc\n"))
    assert main(["predict", str(model), "-", b"\xff".decode("utf-8", "surrogateescape")]) == 2
    assert "SENTENCE 2: not valid UTF-8 text" in capsys.readouterr().err


def test_no_sentences_is_a_usage_error(tmp_path):
    from kd_keras.errors import UsageError

    with pytest.raises(UsageError, match="SENTENCE: no sentences to classify"):
        predict.predictions(str(tmp_path), [])


def test_a_reader_that_stops_early_is_not_a_traceback():
    # `kd-keras predict ... - < big.txt | head -1`: the pipe closes after one line.
    code = ("import sys; import kd_keras.cli.predict as p; "
            "p.resolve = lambda *a: ('tflite', 'm'); "
            "p._classify = lambda runtime, path, s: iter([[('pos', 0.9)] * len(s)]); "
            "from kd_keras.cli import main; sys.exit(main(['predict', 'm'] + ['s'] * 200000))")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    assert child.stdout.readline() == b"pos\t0.900\ts\n"
    child.stdout.close()
    err = child.stderr.read().decode()
    assert child.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err


@pytest.mark.slow
@pytest.mark.parametrize("runtime, altered", [
    ("tflite", "tflite/model_text.tflite"), ("tflite", "tflite/labels.txt"),
    ("saved_model", None)])
def test_an_artifact_altered_since_the_export_is_refused(exported, tmp_path, capsys,
                                                        runtime, altered):
    """predict runs what `verify` would pass: the report's checksums hold."""
    import shutil

    copy = tmp_path / "export"
    shutil.copytree(exported.out_dir, copy)
    if altered is None:  # the SavedModel's variables
        (altered,) = [os.path.relpath(os.path.join(root, f), copy)
                      for root, _, files in os.walk(copy / "saved_model") for f in files
                      if f.startswith("variables.data")]
    with open(copy / altered, "ab") as f:
        f.write(b"\n")
    status = main(["predict", str(copy), SENTENCES[0], "--runtime", runtime])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith(f"kd-keras predict: error: {copy}: ") and "was altered" in err, err
    assert f"kd-keras verify {copy}" in err and len(err.splitlines()) == 1


def test_an_artifact_that_missed_its_tolerance_is_named_before_its_answers(exported, tmp_path,
                                                                         capsys):
    """`--allow-mismatch` keeps an artifact that failed; predict ran it as any other."""
    import json
    import shutil

    copy = tmp_path / "export"
    shutil.copytree(exported.out_dir, copy)
    with open(copy / "report.json", encoding="utf-8") as f:
        report = json.load(f)
    for passed, warned in ((True, False), (False, True), ("no", None)):
        for entry in report["artifacts"]:
            if entry["format"] == "tflite" and entry.get("validation") == "text":
                entry["passed"] = passed
        (copy / "report.json").write_text(json.dumps(report), encoding="utf-8")
        status = main(["predict", str(copy), SENTENCES[0], "--runtime", "tflite"])
        captured = capsys.readouterr()
        if warned is None:  # A damaged report is one line.
            assert status == 2 and "passed: expected bool, got 'no'" in captured.err
            continue
        assert status == 0 and len(captured.out.splitlines()) == 1
        warning = (f"kd-keras predict: warning: tflite/none/text missed its tolerance when "
                   f"exported ({copy / 'report.md'}); its answers may differ from the "
                   "student's")
        assert (warning in captured.err.splitlines()) is warned


def test_answers_are_printed_batch_by_batch(tmp_path):
    """A long standard input shows its first answers while later batches
    are still being classified (they all came at the end)."""
    import select

    flag = tmp_path / "first batch read"
    code = ("import os, sys, time; import kd_keras.cli.predict as p; "
            "p.resolve = lambda *a: ('tflite', 'm')\n"
            "def fake(runtime, path, s):\n"
            "    yield [('pos', 0.9)] * p.BATCH\n"
            f"    while not os.path.exists({str(flag)!r}): time.sleep(0.05)\n"
            "    yield [('neg', 0.8)] * (len(s) - p.BATCH)\n"
            "p._classify = fake\n"
            "from kd_keras.cli import main; sys.exit(main(['predict', 'm'] + ['s'] * 300))")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    try:
        ready, _, _ = select.select([child.stdout], [], [], 120)
        assert ready, "no answer before the second batch"
        assert child.stdout.readline() == b"pos\t0.900\ts\n"
    finally:
        flag.write_text("")
    rest = child.stdout.read().decode().splitlines()
    assert child.wait(timeout=120) == 0, child.stderr.read().decode()
    assert len(rest) == 299 and rest[-1] == "neg\t0.800\ts"
