"""Bad input, table-driven, each through the `kd-keras` CLI: a non-zero exit,
no traceback, one line that names the culprit, and nothing left on disk (or,
for a partial run, nothing changed). The cases run in this process (a new
process per case cost about 6 s of imports); the same checks on a real
process are in `tests/cli/test_distill_cli.py`."""

import json
import os
import subprocess
import sys
import types

import keras
import numpy as np
import pytest
import yaml

from pipeline import resume_helpers as rh
from pipeline import tiny_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Data files, a ready teacher reading MiniLM ids (length 12), one with
    the wrong class count, and a valid config mapping."""
    from kd_keras.data import WordPieceEncoder
    from kd_keras.teachers import minilm_dir

    root = tmp_path_factory.mktemp("bad")
    train = rh.sentences(64, seed=0)
    rh.write_tsv(root / "train.tsv", train)
    rh.write_tsv(root / "test.tsv", rh.sentences(16, seed=1))
    enc = WordPieceEncoder(os.path.join(minilm_dir(), "vocab.txt"), 12)
    for name, classes in (("teacher.keras", 2), ("three.keras", 3)):
        model = keras.Sequential([
            keras.Input((12,), dtype="int32"), keras.layers.Embedding(enc.vocab_size, 4),
            keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(classes)])
        model.save(str(root / name))
    config = {
        "data": {"train": str(root / "train.tsv"), "test": str(root / "test.tsv")},
        "teacher": {"model": str(root / "teacher.keras")},
        "student": {"architecture": "text_cnn", "sequence_length": 12,
                    "options": {"embedding_dim": 8, "filters": 8}},
        "distill": {"epochs": 2, "batch_size": 16, "augment": {"copies": 0}},
        "export": None,
        "verbose": 0,
    }
    return root, config


def _config(tmp_path, base, **changes):
    base = {"output": str(tmp_path / "out"), **base}
    return tiny_run.write_config(tmp_path / "config.yaml", base, **changes)


def _file(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def case_lr_inf(tmp, base):
    return ["distill", _config(tmp, base, **{"distill.learning_rate": float("inf")})], \
        "distill.learning_rate: must be a positive number"


def case_unknown_option(tmp, base):
    return ["distill", _config(tmp, base, **{"student.options.bogus": 1})], \
        "student.options.bogus: not an option of text_cnn"


def case_negative_embedding(tmp, base):
    return ["distill", _config(tmp, base, **{"student.options.embedding_dim": -3})], \
        "student.options.embedding_dim"


def case_student_keys_before_the_data(tmp, base):
    # The data would be refused too (one class), but only at the data stage:
    # a student the config cannot build is refused before any work.
    train = _file(tmp, "one.tsv", "".join(f"text {i}\tpos\n" for i in range(40)))
    return ["distill", _config(tmp, base, **{
        "data.train": train, "data.test": None, "distill.features": [
            {"teacher_layer": "global_average_pooling1d", "student_layer": "featurs"}]})], \
        "distill.features[0].student_layer: no layer 'featurs'"


def case_teacher_layer_before_the_teacher_runs(tmp, base):
    return ["distill", _config(tmp, base, **{"distill.features": [
        {"teacher_layer": "global_average_poling1d", "student_layer": "features"}]})], \
        "distill.features[0].teacher_layer: no layer 'global_average_poling1d'"


def case_image_student_before_the_data(tmp, base):
    train = _file(tmp, "one.tsv", "".join(f"text {i}\tpos\n" for i in range(40)))
    return ["distill", _config(tmp, base, **{"data.train": train, "data.test": None,
                                             "student.architecture": "small_cnn",
                                             "student.options": {}})], \
        "student.architecture: small_cnn is an image model"


def case_sequence_mismatch(tmp, base):
    return ["distill", _config(tmp, base, **{"student.sequence_length": 10})], \
        "student.sequence_length: the teacher"


def case_teacher_table_smaller_than_the_vocabulary(tmp, base):
    small = _keras_file(tmp, "small_table.keras", lambda ids: keras.layers.Dense(2)(
        keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(29, 4)(ids))),
        inputs=keras.Input((12,), dtype="int32"))
    return ["distill", _config(tmp, base, **{"teacher.model": small})], \
        "small_table.keras looks its ids up in a table of 29 (ids 0..28), but the " \
        "student's vocabulary has 30522 ids"


def _small_table_onnx(tmp):
    """An ONNX teacher on 12 int64 ids whose embedding table has 29 rows."""
    import onnx
    from onnx import TensorProto
    from onnx import helper
    from onnx import numpy_helper

    table = np.random.default_rng(0).normal(size=(29, 2)).astype("float32")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["vectors"]),
         helper.make_node("ReduceMean", ["vectors"], ["logits"], axes=[1], keepdims=0)],
        "teacher", [helper.make_tensor_value_info("ids", TensorProto.INT64, [None, 12])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 2])],
        [numpy_helper.from_array(table, "table")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(tmp / "small_table.onnx"))
    return str(tmp / "small_table.onnx")


def case_onnx_teacher_table_smaller_than_the_vocabulary(tmp, base):
    # Found before any work by one run on the largest id, not minutes into
    # the labelling (or never, when no text maps to an id past the table).
    return ["distill", _config(tmp, base, **{"teacher.model": _small_table_onnx(tmp)})], \
        "small_table.onnx cannot read the student's largest id 30521 ("


def case_saved_model_teacher_table_smaller_than_the_vocabulary(tmp, base):
    ids = keras.Input((12,), dtype="int32")
    model = keras.Model(ids, keras.layers.Dense(2)(
        keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(29, 4)(ids))))
    model.export(str(tmp / "small_table"), verbose=False)
    return ["distill", _config(tmp, base, **{"teacher.model": str(tmp / "small_table")})], \
        "small_table cannot read the student's largest id 30521 ("


def case_teacher_with_two_outputs(tmp, base):
    # It crashed in the labelling with a traceback, or read as [2, n, 2] logits.
    two = _keras_file(tmp, "two.keras", lambda ids: [
        keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(
            keras.layers.Embedding(30522, 4)(ids))), keras.layers.Dense(3)(
            keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(30522, 4)(ids)))],
        inputs=keras.Input((12,), dtype="int32"))
    return ["distill", _config(tmp, base, **{"teacher.model": two})], \
        f"teacher.model: {two}: a Keras model with 2 outputs; a teacher gives one"


def case_onnx_teacher_with_two_outputs(tmp, base):
    # Its first output was taken without a word.
    import onnx
    from onnx import TensorProto
    from onnx import helper

    graph = helper.make_graph(
        [helper.make_node("Cast", ["ids"], ["f"], to=TensorProto.FLOAT),
         helper.make_node("Slice", ["f", "zero", "two", "one"], ["logits"]),
         helper.make_node("Slice", ["f", "zero", "three", "one"], ["other"])],
        "teacher", [helper.make_tensor_value_info("ids", TensorProto.INT64, [None, 12])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 2]),
         helper.make_tensor_value_info("other", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor(n, TensorProto.INT64, [1], [v])
         for n, v in (("zero", 0), ("one", 1), ("two", 2), ("three", 3))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(tmp / "two.onnx"))
    return ["distill", _config(tmp, base, **{"teacher.model": str(tmp / "two.onnx")})], \
        "two.onnx returns several outputs ['logits', 'other']"


JSONL_COLUMNS = {"data.text_column": "text", "data.label_column": "label"}


def case_class_name_with_a_line_break(tmp, base):
    # Refused at the export, after the teacher and the training.
    rows = "".join(json.dumps({"text": f"text {i}", "label": ["good", "not\ngood"][i % 2]}) + "\n"
                   for i in range(40))
    train = _file(tmp, "lines.jsonl", rows)
    return ["distill", _config(tmp, base, **{"data.train": train, "data.test": None,
                                          **JSONL_COLUMNS})], \
        "lines.jsonl: line 2: class name 'not\\ngood' holds a line break"


def case_nul_in_a_jsonl_text(tmp, base):
    # The tokenizer dropped what follows a NUL; the exported one kept it.
    rows = "".join(json.dumps({"text": f"text {i}" + ("\u0000 x" if i == 5 else ""),
                               "label": i % 2}) + "\n" for i in range(40))
    train = _file(tmp, "nul.jsonl", rows)
    return ["distill", _config(tmp, base, **{"data.train": train, "data.test": None,
                                          **JSONL_COLUMNS})], \
        "nul.jsonl: line 6: text 'text' holds a NUL character"


def case_output_under_a_file(tmp, base):
    blocker = _file(tmp, "blocker", "a file")
    return ["distill", _config(tmp, base, output=os.path.join(blocker, "run"))], \
        "is not a folder"


def case_yaml_alias_bomb(tmp, base):
    bomb = "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a]\nc: [*b,*b,*b,*b,*b]\n"
    return ["distill", _file(tmp, "bomb.yaml", bomb)], "aliases are not supported"


def case_three_line_data(tmp, base):
    train = _file(tmp, "tiny.tsv", "good film\tpos\nbad film\tneg\nfine\tpos\n")
    return ["distill", _config(tmp, base, **{"data.train": train, "data.test": None})], \
        "tiny.tsv: 3 example(s)"


def case_merged_label_spellings(tmp, base):
    rows = "".join(f"text {i}\t{label}\n" for i, label in enumerate(["0", "1", "01"] * 10))
    train = _file(tmp, "labels.tsv", rows)
    return ["distill", _config(tmp, base, **{"data.train": train, "data.test": None})], \
        "spelled two ways"


def case_one_class(tmp, base):
    train = _file(tmp, "one.tsv", "".join(f"text {i}\tpos\n" for i in range(40)))
    return ["distill", _config(tmp, base, **{"data.train": train, "data.test": None})], \
        "one.tsv: 1 class"


def case_line_break_in_a_file_name(tmp, base):
    # The line was cut at the line break: "kd-keras distill: error: ...", with
    # the file's name, never shown whole.
    train = _file(tmp, "one\nclass.tsv", "".join(f"text {i}\tpos\n" for i in range(40)))
    return ["distill", _config(tmp, base, **{"data.train": train, "data.test": None})], \
        "one\\nclass.tsv: 1 class"


def case_teacher_class_count(tmp, base):
    root = os.path.dirname(base["teacher"]["model"])
    return ["distill", _config(tmp, base, **{"teacher.model": os.path.join(root, "three.keras")})], \
        "outputs 3 logits but the data has 2 classes"


def case_teacher_nan_logits(tmp, base):
    root = os.path.dirname(base["teacher"]["model"])
    model = keras.saving.load_model(os.path.join(root, "teacher.keras"))
    weights = model.get_weights()
    weights[-1][:] = np.nan
    model.set_weights(weights)
    model.save(str(tmp / "nan.keras"))
    return ["distill", _config(tmp, base, **{"teacher.model": str(tmp / "nan.keras")})], \
        "nan.keras gives non-finite logits (NaN or inf) for train example 0"


def case_teacher_softmax_named_by_its_file(tmp, base):
    softmax = _keras_file(tmp, "softmax.keras", lambda ids: keras.layers.Dense(
        2, activation="softmax")(keras.layers.GlobalAveragePooling1D()(
            keras.layers.Embedding(30522, 4)(ids))), inputs=keras.Input((12,), dtype="int32"))
    return ["distill", _config(tmp, base, **{"teacher.model": softmax})], \
        f"teacher.model: {softmax}: ends in a softmax"


def case_builtin_split_leaving_empty_splits(tmp, base):
    return ["distill", _config(tmp, base, data={"builtin": "rt_polarity",
                                                "split": [0.999998, 0.000001, 0.000001]})], \
        "rt_polarity: the validation split holds no examples; give data.split fractions"


def case_corrupt_keras_file(tmp, base):
    model = tmp / "corrupt.keras"
    model.write_bytes(b"PK\x03\x04 this is not a keras archive")
    return ["export", str(model), str(tmp / "out")], \
        "corrupt.keras: cannot load the model (damaged .keras archive: not a zip file)"


def case_negative_latency_runs(tmp, base):
    return ["verify", str(tmp), "--latency-runs", "-5"], "--latency-runs"


def case_report_missing_fields(tmp, base):
    export = tmp / "export"
    export.mkdir()
    (export / "report.json").write_text(json.dumps({"artifacts": [{"format": "tflite"}]}))
    return ["verify", str(export)], "report.json"


def _keras_file(tmp, name, outputs=None, inputs=None):
    """Saves a small functional model (on 4 float features by default)."""
    inputs = inputs if inputs is not None else keras.Input((4,), name="features")
    model = keras.Model(inputs, outputs(inputs) if outputs else keras.layers.Dense(3)(inputs))
    path = tmp / name
    model.save(str(path))
    return str(path)


def case_export_multi_output(tmp, base):
    model = _keras_file(tmp, "multi.keras", lambda x: [keras.layers.Dense(3)(x),
                                                       keras.layers.Dense(2)(x)])
    return ["export", model, str(tmp / "out")], "multi.keras: has 2 outputs"


def case_export_string_input(tmp, base):
    # kd-keras export takes id models; raw-text artifacts come from
    # export_model(..., text=TextExport(preprocessor=...)) on the id model.
    vectorize = keras.layers.TextVectorization(max_tokens=20, output_sequence_length=4)
    vectorize.adapt(["a b c", "d e f"])
    model = _keras_file(tmp, "text.keras", lambda t: keras.layers.Dense(2)(
        keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(20, 4)(vectorize(t)))),
        inputs=keras.Input((), dtype="string", name="text"))
    return ["export", model, str(tmp / "out")], "text.keras: input 'text' takes strings"


def case_export_nan_calibration(tmp, base):
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    x[3, 1] = np.nan
    np.save(tmp / "calib.npy", x)
    return ["export", _keras_file(tmp, "good.keras"), str(tmp / "out"), "--formats", "onnx",
            "--quantization", "int8", "--representative-data", str(tmp / "calib.npy")], \
        "calib.npy': input 'features' holds NaN or inf in 1 example(s)"


def case_export_no_class_axis(tmp, base):
    model = _keras_file(tmp, "flat.keras",
                        lambda x: keras.layers.Reshape(())(keras.layers.Dense(1)(x)))
    return ["export", model, str(tmp / "out")], \
        "flat.keras: output has shape ('batch',); expected [batch, classes] logits"


CASES = [case_lr_inf, case_builtin_split_leaving_empty_splits, case_teacher_nan_logits, case_teacher_softmax_named_by_its_file, case_unknown_option, case_negative_embedding, case_sequence_mismatch,
         case_teacher_table_smaller_than_the_vocabulary,
         case_onnx_teacher_table_smaller_than_the_vocabulary,
         case_saved_model_teacher_table_smaller_than_the_vocabulary, case_student_keys_before_the_data,
         case_image_student_before_the_data, case_teacher_layer_before_the_teacher_runs,
         case_output_under_a_file, case_yaml_alias_bomb, case_three_line_data,
         case_merged_label_spellings, case_one_class, case_line_break_in_a_file_name,
         case_teacher_class_count,
         case_corrupt_keras_file, case_negative_latency_runs, case_report_missing_fields,
         case_export_multi_output, case_export_string_input, case_export_nan_calibration,
         case_export_no_class_axis, case_teacher_with_two_outputs,
         case_onnx_teacher_with_two_outputs, case_class_name_with_a_line_break,
         case_nul_in_a_jsonl_text]


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """`run_cli(args, cwd)`: `kd-keras ARGS` from `cwd`, in this process;
    its exit status and standard error."""
    from kd_keras.cli import main

    def run(args, cwd):
        monkeypatch.chdir(cwd)
        capsys.readouterr()
        try:
            status = main([str(a) for a in args])
        except SystemExit as e:  # argparse's usage errors
            status = e.code
        return types.SimpleNamespace(returncode=status, stderr=capsys.readouterr().err)

    return run


def snapshot(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder)
                  for d, _, files in os.walk(folder) for f in files)


def assert_one_line(proc, command, expected):
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("kd-keras")]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith(f"kd-keras {command}: error: ")
    assert expected in lines[0], lines[0]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__[5:])
def test_bad_input_is_one_line_and_leaves_nothing(case, world, tmp_path, run_cli):
    root, base = world
    args, expected = case(tmp_path, base)
    before = snapshot(tmp_path)
    proc = run_cli(args, cwd=str(tmp_path))
    assert_one_line(proc, args[0], expected)
    assert snapshot(tmp_path) == before  # nothing written, nothing removed


def _partial_run(world, tmp_path, stop_epoch):
    """An interrupted run (in this process) and its config file."""
    from kd_keras.config import load_config
    from kd_keras.pipeline import run_distill

    _, base = world
    config = _config(tmp_path, base, **{"distill.epochs": 3})
    with pytest.raises(rh.Stop):
        run_distill(load_config(config), extra_callbacks=[rh.StopAtEpoch(stop_epoch)])
    return config, str(tmp_path / "out")


def test_resume_with_a_changed_architecture_or_a_truncated_backup(world, tmp_path, run_cli):
    config, out = _partial_run(world, tmp_path, stop_epoch=0)
    before = snapshot(out + ".partial")
    changed = yaml.safe_load(open(config))
    changed["student"]["architecture"] = "bigru"
    changed["student"]["options"] = {}
    other = tmp_path / "changed.yaml"
    other.write_text(yaml.safe_dump(changed))
    proc = run_cli(["distill", str(other), "--resume"], cwd=str(tmp_path))
    assert_one_line(proc, "distill", "--resume: the config changed since the interrupted run "
                                     "(student.architecture, student.options.embedding_dim")
    assert snapshot(out + ".partial") == before

    backups = [os.path.join(d, f) for d, _, files in os.walk(out + ".partial/backup")
               for f in files if f.endswith(".h5")]
    assert backups
    with open(backups[0], "r+b") as f:
        f.truncate(100)
    proc = run_cli(["distill", config, "--resume"], cwd=str(tmp_path))
    assert_one_line(proc, "distill", "is damaged; run without --resume to start over")
    assert not os.path.exists(out) and not os.path.exists(out + ".lock")


def test_a_second_run_into_the_same_output_is_refused(world, tmp_path, run_cli):
    _, base = world
    config = _config(tmp_path, base)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        lock = tmp_path / "out.lock"
        lock.write_text(json.dumps({"pid": holder.pid, "host": __import__("socket").gethostname()}))
        proc = run_cli(["distill", config], cwd=str(tmp_path))
        assert_one_line(proc, "distill", f"another kd-keras run (pid {holder.pid}")
        assert sorted(os.listdir(tmp_path)) == ["config.yaml", "out.lock"]
    finally:
        holder.kill()
        holder.wait()
