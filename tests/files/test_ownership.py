"""kd_keras replaces only what it wrote: export folders, published runs and
their inputs, symlinked outputs (`kd_keras.files.ownership`)."""

import json
import os

import keras
import pytest

import distill_helpers
from kd_keras.cli import main
from kd_keras.config import RunConfig
from kd_keras.errors import UsageError
from kd_keras.pipeline.workdir import RunDir
from kd_keras.files.lock import release_lock


def tree(folder):
    """Every entry under `folder` (symlinks not followed) with what it holds."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder)
            if os.path.islink(path):
                out[rel] = ("link", os.readlink(path))
            elif os.path.isfile(path):
                out[rel] = ("file", open(path, "rb").read())
            else:
                out[rel] = ("dir",)
    return out


def one_error_line(capsys, command):
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("kd-keras")]
    assert len(err) == 1 and err[0].startswith(f"kd-keras {command}: error: "), err
    return err[0]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    x = keras.Input((4,), name="features")
    path = tmp_path_factory.mktemp("model") / "dense.keras"
    keras.Model(x, keras.layers.Dense(3)(x)).save(str(path))
    return str(path)


def export(model_file, out):
    return main(["export", model_file, str(out), "--formats", "tflite",
                 "--latency-runs", "0"])


def test_export_into_a_users_folder_is_refused_and_nothing_changes(tmp_path, model_file,
                                                                   capsys):
    out, outside = tmp_path / "out", tmp_path / "outside"
    (outside).mkdir()
    (outside / "big.bin").write_bytes(b"x" * 1000)
    for rel, text in (("onnx/mine.onnx", "mine"), ("verification/secret.txt", "secret"),
                      ("report.md", "my report"), ("notes.txt", "notes")):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)
    os.symlink(outside, out / "link")
    before = tree(out)
    assert export(model_file, out) == 2
    assert "did not write" in one_error_line(capsys, "export")
    assert tree(out) == before and os.path.islink(out / "link")
    assert sorted(os.listdir(tmp_path)) == ["out", "outside"]  # no staging folder left


def test_export_replaces_its_own_folder_but_not_a_file_added_or_edited(tmp_path, model_file,
                                                                       capsys):
    out = tmp_path / "out"
    assert export(model_file, out) == 0 and export(model_file, out) == 0
    (out / "tflite" / "notes.txt").write_text("mine")
    before = tree(out)
    assert export(model_file, out) == 2
    assert "tflite/notes.txt" in one_error_line(capsys, "export")
    assert tree(out) == before

    os.remove(out / "tflite" / "notes.txt")
    with open(out / "report.md", "a") as f:
        f.write("\nmy own comment\n")
    before = tree(out)
    assert export(model_file, out) == 2
    assert "report.md" in one_error_line(capsys, "export")
    assert tree(out) == before


def test_export_into_a_symlink_is_refused(tmp_path, model_file, capsys):
    real = tmp_path / "real"
    assert export(model_file, real) == 0
    os.symlink(real, tmp_path / "link")
    before = tree(tmp_path)
    assert export(model_file, tmp_path / "link") == 2
    assert "is a symlink" in one_error_line(capsys, "export")
    assert tree(tmp_path) == before


def _published_run(out, files):
    """A finished kd_keras run at `out` holding `files` ({name: text})."""
    run = RunDir(str(out), RunConfig())
    for name, text in files.items():
        os.makedirs(os.path.dirname(run.file(name)), exist_ok=True)
        with open(run.file(name), "w") as f:
            f.write(text)
    run.publish()
    run.close()


@pytest.fixture(scope="module")
def teacher_path(tmp_path_factory):
    return distill_helpers.shared_teacher(tmp_path_factory)


def test_inputs_inside_the_output_are_refused_before_any_work(tmp_path, teacher_path, capsys):
    out = tmp_path / "runs" / "x"
    _published_run(out, {"student.keras": "a model"})
    # Second-round distillation: the first run's student as the teacher, same output.
    config = distill_helpers.write_config(tmp_path / "c.yaml", str(out / "student.keras"),
                                          str(out))
    before = tree(tmp_path)
    assert main(["distill", config]) == 2
    line = one_error_line(capsys, "distill")
    assert f"teacher.model: {out / 'student.keras'} lies inside {out}" in line
    assert tree(tmp_path) == before

    train = out / "export" / "train.tsv"  # Under a name the run writes: claimed.
    _published_run(out, {"export/train.tsv": "good film\tpos\n"})
    config = distill_helpers.write_config(tmp_path / "c.yaml", teacher_path, str(out),
                                          data={"train": str(train)})
    before = tree(tmp_path)
    assert main(["distill", config]) == 2
    assert f"data.train: {train} lies inside" in one_error_line(capsys, "distill")
    assert tree(tmp_path) == before


def test_a_run_and_an_export_folder_are_named_as_each_other_not_as_a_users(
        tmp_path, teacher_path, model_file, capsys):
    from kd_keras.export.output_dir import EXPORT_MARKER
    from kd_keras.pipeline.workdir import MARKER

    run, exported = tmp_path / "run", tmp_path / "exported"
    _published_run(run, {"results.json": "{}"})
    assert export(model_file, exported) == 0
    capsys.readouterr()
    before = tree(tmp_path)
    config = distill_helpers.write_config(tmp_path / "c.yaml", teacher_path, str(exported))
    assert main(["distill", config]) == 2
    assert one_error_line(capsys, "distill").endswith(
        f"output: {exported} holds another kind of kd_keras output ({EXPORT_MARKER}, not "
        f"{MARKER}); choose a new path")
    assert export(model_file, run) == 2
    assert f"({MARKER}, not {EXPORT_MARKER})" in one_error_line(capsys, "export")
    os.remove(tmp_path / "c.yaml")
    assert tree(tmp_path) == before


def test_a_users_file_in_an_earlier_run_is_never_deleted(tmp_path, teacher_path, capsys):
    out = tmp_path / "run"
    _published_run(out, {"results.json": "{}"})
    (out / "my_notes.txt").write_text("keep me")
    config = distill_helpers.write_config(tmp_path / "c.yaml", teacher_path, str(out))
    before = tree(tmp_path)
    assert main(["distill", config]) == 2
    assert "holds my_notes.txt, which kd_keras did not write" in one_error_line(
        capsys, "distill")
    assert tree(tmp_path) == before


def test_a_file_added_during_the_run_stops_the_publish_and_keeps_the_run(tmp_path):
    out = tmp_path / "run"
    _published_run(out, {"results.json": "1"})
    second = RunDir(str(out), RunConfig())
    with open(second.file("results.json"), "w") as f:
        f.write("2")
    (out / "added_meanwhile.txt").write_text("keep me")
    with pytest.raises(UsageError, match=r"added_meanwhile.txt.*--resume to publish it"):
        second.publish()
    second.close()
    assert (out / "added_meanwhile.txt").read_text() == "keep me"
    assert (tmp_path / "run.partial" / "results.json").read_text() == "2"
    os.remove(out / "added_meanwhile.txt")
    third = RunDir(str(out), RunConfig(), resume=True)
    third.publish()
    third.close()
    assert (out / "results.json").read_text() == "2"


def test_an_output_that_is_a_symlink_is_refused(tmp_path, teacher_path, capsys):
    _published_run(tmp_path / "real", {"results.json": "{}"})
    os.symlink(tmp_path / "real", tmp_path / "link")
    config = distill_helpers.write_config(tmp_path / "c.yaml", teacher_path,
                                          str(tmp_path / "link"))
    before = tree(tmp_path)
    assert main(["distill", config]) == 2
    assert "is a symlink" in one_error_line(capsys, "distill")
    assert tree(tmp_path) == before


def test_a_damaged_lock_file_says_no_process_holds_it(tmp_path):
    out = str(tmp_path / "run")
    with open(out + ".lock", "w") as f:
        f.write("{not json")
    with pytest.raises(UsageError) as e:
        RunDir(out, RunConfig())
    assert "names no process" in str(e.value) and f"remove {out}.lock" in str(e.value)
    assert "pid None" not in str(e.value)
    assert sorted(os.listdir(tmp_path)) == ["run.lock"]
    # An empty one that no process holds (its writer died before writing) is
    # taken over: a live holder keeps an OS lock on it.
    open(out + ".lock", "w").close()
    run = RunDir(out, RunConfig())
    run.close()
    assert not os.path.exists(out + ".lock")


def test_two_runs_taking_over_one_stale_lock_cannot_both_win(tmp_path):
    import subprocess
    import sys
    import time

    out = str(tmp_path / "run")
    with open(out + ".lock", "w") as f:  # Left by a process that is gone.
        json.dump({"pid": 2**22 + 7, "host": __import__("socket").gethostname()}, f)
    # Each run checks the dead holder slowly, and they all start at once:
    # without an OS lock, each saw the stale lock and took it over.
    script = (
        "import sys, time\n"
        "from kd_keras.files import lock\n"
        "from kd_keras.files.lock import acquire_lock\n"
        "gone = lock.is_gone\n"
        "lock.is_gone = lambda other: (time.sleep(1), gone(other))[1]\n"
        "time.sleep(max(0, float(sys.argv[2]) - time.time()))\n"
        "try:\n"
        "    acquire_lock(sys.argv[1])\n"
        "except Exception as e:\n"
        "    print('refused', e); sys.exit(0)\n"
        "print('got it'); sys.stdout.flush(); time.sleep(8)\n")
    start = str(time.time() + 15)  # After every process has imported kd_keras.
    runs = [subprocess.Popen([sys.executable, "-c", script, out, start], stdout=subprocess.PIPE,
                             text=True) for _ in range(4)]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert sum(o.startswith("got it") for o in outputs) == 1, outputs


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"data": 3}'])
def test_resume_with_damaged_stages_json_is_one_line(tmp_path, content):
    out = str(tmp_path / "run")
    run = RunDir(out, RunConfig())
    run.finish("data", {"n": 1})
    run.close()
    with open(os.path.join(out + ".partial", "stages.json"), "w") as f:
        f.write(content)
    with pytest.raises(UsageError, match=r"--resume: .*stages.json is damaged; run without "
                                         "--resume to start over"):
        RunDir(out, RunConfig(), resume=True)
    assert not os.path.exists(out + ".lock")


def test_a_legacy_marker_without_a_file_list_is_not_taken_for_ours(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".kd_keras_run").write_text(json.dumps({"kd_keras_run": 1}))
    (out / "notes.txt").write_text("x")
    with pytest.raises(UsageError, match="no .kd_keras_run listing its files"):
        RunDir(str(out), RunConfig())
    release_lock(str(out))
    assert (out / "notes.txt").read_text() == "x"


def test_foreign_files_lists_added_files_before_changed_ones(tmp_path):
    from kd_keras.files.ownership import foreign_files
    from kd_keras.files.ownership import write_marker

    (tmp_path / "a.txt").write_text("ours")
    (tmp_path / "b.txt").write_text("ours")
    write_marker(str(tmp_path), ".owner")
    assert foreign_files(str(tmp_path), ".owner") == []
    (tmp_path / "a.txt").write_text("edited by the user")
    (tmp_path / "z.txt").write_text("added by the user")
    (tmp_path / "y").symlink_to(tmp_path / "b.txt")
    assert foreign_files(str(tmp_path), ".owner") == ["y", "z.txt", "a.txt"]


def test_a_resumed_run_does_not_claim_a_file_added_while_it_was_stopped(tmp_path, capsys):
    from pipeline import resume_helpers as rh
    from pipeline import tiny_run

    base = tiny_run.make_world(tmp_path)
    config = tiny_run.write_config(tmp_path / "run.yaml", base)
    finish = RunDir.finish

    def stop_after_distill(self, name, record=None, files=()):
        finish(self, name, record, files)
        if name == "distill":
            raise rh.Stop(name)

    RunDir.finish = stop_after_distill
    try:
        with pytest.raises(rh.Stop):
            main(["distill", config])
    finally:
        RunDir.finish = finish
    notes = os.path.join(base["output"] + ".partial", "NOTES.txt")
    with open(notes, "w") as f:
        f.write("mine")
    assert main(["distill", config, "--resume"]) == 0, capsys.readouterr().err
    published = os.path.join(base["output"], "NOTES.txt")
    with open(os.path.join(base["output"], ".kd_keras_run")) as f:
        assert "NOTES.txt" not in json.load(f)["files"]
    capsys.readouterr()
    assert main(["distill", config]) == 2  # A run over it would delete it: refused.
    assert "holds NOTES.txt, which kd_keras did not write" in capsys.readouterr().err
    assert open(published).read() == "mine"


def test_an_empty_folder_of_the_users_is_kept_and_an_empty_output_leaves_nothing_beside(
        tmp_path, capsys):
    from pipeline import tiny_run

    base = tiny_run.make_world(tmp_path)
    config = tiny_run.write_config(tmp_path / "run.yaml", base)
    os.makedirs(base["output"])  # An empty folder: nothing to lose, it is replaced.
    assert main(["distill", config]) == 0, capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["out", "run.yaml", "teacher.keras", "test.tsv", "train.tsv", "vocab.txt"])
    os.makedirs(os.path.join(base["output"], "my_empty_dir"))
    capsys.readouterr()
    assert main(["distill", config]) == 2
    assert "holds my_empty_dir, which kd_keras did not write" in capsys.readouterr().err
    assert os.path.isdir(os.path.join(base["output"], "my_empty_dir"))
