"""`OUTPUT.partial/`: stage records, config-bound resume, safe publication."""

import os

import pytest

from kd_keras.config import parse_config
from kd_keras.errors import ConfigError
from kd_keras.errors import UsageError
from kd_keras.pipeline.workdir import MARKER
from kd_keras.pipeline.workdir import RunDir
from kd_keras.files.lock import release_lock

CFG = parse_config({"data": {"builtin": "rt_polarity"}, "teacher": {"backbone": "minilm"}})


def test_stages_are_recorded_and_survive_a_resume(tmp_path):
    out = str(tmp_path / "run")
    run = RunDir(out, CFG)
    run.finish("data", {"digest": "abc"})
    again = RunDir(out, CFG.replace(verbose=0), resume=True)  # verbose is not fingerprinted
    assert again.done("data") == {"digest": "abc"} and again.done("distill") is None
    fresh = RunDir(out, CFG)  # without --resume: start over
    assert fresh.done("data") is None


def test_resume_with_a_changed_config_names_the_keys(tmp_path):
    out = str(tmp_path / "run")
    RunDir(out, CFG).finish("data")
    changed = parse_config({"data": {"builtin": "rt_polarity"}, "teacher": {"backbone": "minilm"},
                            "distill": {"alpha": 0.5, "learning_rate": 0.01}})
    with pytest.raises(ConfigError) as e:
        RunDir(out, changed, resume=True)
    assert "distill.alpha, distill.learning_rate" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UsageError, match="no interrupted run"):
        RunDir(str(tmp_path / "other"), CFG, resume=True)


def test_a_run_from_before_a_config_key_resumes_while_the_key_keeps_its_default(tmp_path):
    """An interrupted run whose config.json predates `distill.feature_dtype`
    (and a whole section's worth of keys) resumes at the defaults; a
    non-default value of the new key, or a change to an old one, is refused."""
    import json

    out = str(tmp_path / "run")
    run = RunDir(out, CFG)
    run.finish("data")
    path = run.file("config.json")
    with open(path) as f:
        old = json.load(f)
    del old["distill"]["feature_dtype"]
    del old["distill"]["augment"]["per_epoch"]
    with open(path, "w") as f:
        json.dump(old, f)
    assert RunDir(out, CFG, resume=True).done("data") is not None
    for distill in ({"feature_dtype": "float16"}, {"alpha": 0.5},
                    {"augment": {"per_epoch": True}}):
        changed = parse_config({"data": {"builtin": "rt_polarity"},
                                "teacher": {"backbone": "minilm"}, "distill": distill})
        with pytest.raises(ConfigError, match="the config changed since"):
            RunDir(out, changed, resume=True)


def test_a_run_that_recorded_header_false_resumes_with_the_header_unset(tmp_path):
    """Earlier versions wrote `data.header: false` where it is now unset
    (null); both read the files the same way, so the run resumes, and a
    header that would be read differently is a change."""
    import json

    out = str(tmp_path / "run")
    unset = parse_config({"data": {"train": "t.tsv"}, "teacher": {"backbone": "minilm"}})
    run = RunDir(out, unset)
    run.finish("data")
    with open(run.file("config.json")) as f:
        assert json.load(f)["data"]["header"] is False
    explicit = parse_config({"data": {"train": "t.tsv", "header": False},
                             "teacher": {"backbone": "minilm"}})
    assert RunDir(out, explicit, resume=True).done("data") is not None
    with pytest.raises(ConfigError, match=r"changed since the interrupted run \(data.header\)"):
        RunDir(out, parse_config({"data": {"train": "t.tsv", "header": True},
                                  "teacher": {"backbone": "minilm"}}), resume=True)
    # JSONL has no header row, even with its keys as column names.
    keys = {"train": "t.jsonl", "text_column": "text", "label_column": "label"}
    out = str(tmp_path / "jsonl")
    RunDir(out, parse_config({"data": keys, "teacher": {"backbone": "minilm"}})).finish("data")
    explicit = parse_config({"data": {**keys, "header": False}, "teacher": {"backbone": "minilm"}})
    assert RunDir(out, explicit, resume=True).done("data") is not None


def test_publish_replaces_an_earlier_run_only(tmp_path):
    out = tmp_path / "run"
    first = RunDir(str(out), CFG)
    with open(first.file("results.json"), "w") as f:
        f.write("1")
    first.publish()
    second = RunDir(str(out), CFG)
    with open(second.file("results.json"), "w") as f:
        f.write("2")
    second.publish()
    second.close()
    assert (out / "results.json").read_text() == "2" and (out / MARKER).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no leftovers

    users = tmp_path / "mine"
    users.mkdir()
    (users / "data.tsv").write_text("x")
    with pytest.raises(UsageError, match="did not write"):
        RunDir(str(users), CFG)
    partial = tmp_path / "theirs.partial"
    partial.mkdir()
    (partial / "f").write_text("x")
    with pytest.raises(UsageError, match="is not a kd_keras run"):
        RunDir(str(tmp_path / "theirs"), CFG)
    assert (partial / "f").read_text() == "x" and (users / "data.tsv").read_text() == "x"


def test_discard_removes_only_a_kd_keras_partial_run(tmp_path):
    run = RunDir(str(tmp_path / "run"), CFG)
    run.discard()
    assert not os.path.exists(run.path)


def _interrupted(out):
    """A run that stopped after its data stage, with a file of its own
    written after that stage."""
    run = RunDir(out, CFG)
    run.finish("data")
    os.makedirs(run.file("teacher_outputs"))
    with open(run.file("teacher_outputs", "shard_0.npz"), "wb") as f:
        f.write(b"half a stage")
    run.close()  # what an interrupted run does on its way out
    return run.path


def test_starting_over_keeps_a_file_the_interrupted_run_did_not_write(tmp_path):
    out = str(tmp_path / "run")
    partial = _interrupted(out)
    notes = os.path.join(partial, "teacher_outputs", "mine", "notes.txt")
    os.makedirs(os.path.dirname(notes))
    with open(notes, "w") as f:
        f.write("mine")
    with pytest.raises(UsageError) as e:
        RunDir(out, CFG)
    assert str(e.value) == (
        f"output: {partial} holds teacher_outputs/mine/notes.txt, which the interrupted run "
        "did not record (added or changed since it stopped); continue it with --resume, or "
        "move that out or remove the folder yourself to start over")
    assert open(notes).read() == "mine"
    # A file of the run that changed since it stopped is not the run's either.
    os.remove(notes)  # A folder of the user's, even empty, is theirs.
    with pytest.raises(UsageError, match="holds teacher_outputs/mine, which"):
        RunDir(out, CFG)
    os.rmdir(os.path.dirname(notes))
    with open(os.path.join(partial, "stages.json"), "a") as f:
        f.write(" ")
    with pytest.raises(UsageError, match="holds stages.json, which"):
        RunDir(out, CFG)
    assert os.path.isfile(os.path.join(partial, "teacher_outputs", "shard_0.npz"))


def test_starting_over_deletes_an_interrupted_run_that_holds_only_its_own_files(tmp_path):
    out = str(tmp_path / "run")
    partial = _interrupted(out)
    fresh = RunDir(out, CFG)
    assert fresh.done("data") is None and os.listdir(partial) and not os.path.exists(
        os.path.join(partial, "teacher_outputs"))


def test_a_partial_run_without_a_record_of_its_files_is_not_deleted(tmp_path):
    out = str(tmp_path / "run")
    partial = tmp_path / "run.partial"
    partial.mkdir()
    (partial / MARKER).write_text('{"kd_keras_run": 1}')  # an earlier kd_keras's marker
    (partial / "stages.json").write_text("{}")
    with pytest.raises(UsageError, match="no record of its files .* --resume"):
        RunDir(out, CFG)
    assert (partial / "stages.json").read_text() == "{}"


def test_a_failed_resume_keeps_a_folder_that_held_a_users_file(tmp_path):
    out = str(tmp_path / "run")
    partial = _interrupted(out)
    notes = os.path.join(partial, "notes.txt")
    with open(notes, "w") as f:
        f.write("mine")
    run = RunDir(out, CFG, resume=True)
    run.finish("teacher")
    run.discard()  # a bad input found by the resumed run
    run.close()
    assert open(notes).read() == "mine"
    with pytest.raises(UsageError, match=r"holds notes.txt, which"):
        RunDir(out, CFG)  # the user's file is still not the run's


def test_a_second_run_into_the_same_output_is_refused(tmp_path):
    import json
    import subprocess
    import sys

    from kd_keras.files.lock import acquire_lock
    from kd_keras.files.lock import release_lock

    out = str(tmp_path / "run")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with open(out + ".lock", "w") as f:  # a live process holds the lock
            json.dump({"pid": sleeper.pid, "host": __import__("socket").gethostname()}, f)
        with pytest.raises(UsageError, match=rf"another kd-keras run \(pid {sleeper.pid}"):
            RunDir(out, CFG)
        assert not os.path.exists(out + ".partial")
    finally:
        sleeper.kill()
        sleeper.wait()
    # The holder is dead now: its stale lock is taken over, then released.
    run = RunDir(out, CFG)
    assert json.load(open(out + ".lock"))["pid"] == os.getpid()
    run.close()
    assert not os.path.exists(out + ".lock")
    release_lock(out)  # releasing twice is harmless
    assert acquire_lock(out) == out + ".lock"


def test_a_read_only_parent_is_one_line(tmp_path, monkeypatch):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)  # root ignores the mode bits, so also deny access itself:
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(parent)
                        else real_access(p, mode))
    with pytest.raises(UsageError, match=rf"output: cannot write in {parent} \(permission"):
        RunDir(str(parent / "run"), CFG)
    assert list(parent.iterdir()) == []


def test_builtin_data_with_one_training_class_is_one_line():
    from kd_keras.data import load_builtin
    from kd_keras.errors import DataError
    from kd_keras.pipeline.data_stage import check_classes

    data = load_builtin("rt_polarity", max_examples=40, seed=0)
    check_classes(data, "rt_polarity")
    one_class = dict(data.labels, train=data.labels["train"] * 0)
    with pytest.raises(DataError, match=r"^rt_polarity: 1 class\(es\) in the training labels"):
        check_classes(type(data)(data.texts, one_class, data.label_names), "rt_polarity")
    only_in_test = dict(data.labels, test=data.labels["test"].copy())
    only_in_test["test"][0] = 2  # a third class, never trained
    with pytest.raises(DataError, match="class 'new' is in the test split but not in the "
                                        "training split"):
        check_classes(type(data)(data.texts, only_in_test, [*data.label_names, "new"]),
                      "rt_polarity")


def test_an_output_whose_parent_folder_does_not_exist_yet(tmp_path):
    # A fresh clone has no runs/ folder: `make demo` writes runs/demo.
    out = tmp_path / "runs" / "demo"
    run = RunDir(str(out), CFG, resume=False)
    run.finish("data", {"n": 1})
    run.publish()
    release_lock(str(out))
    assert (out / MARKER).is_file() and sorted(os.listdir(tmp_path / "runs")) == ["demo"]


def test_a_resume_removes_what_killed_writers_left_and_nothing_else(tmp_path):
    from kd_keras.files.atomic import atomic_path

    out = str(tmp_path / "run")
    run = RunDir(out, CFG)
    run.finish("data")
    os.makedirs(run.file("early_stopping"))
    # Writers killed mid-write: their blocks never end (the context managers
    # are kept alive, as a killed process never closes them).
    writers = [atomic_path(run.file("early_stopping", "best-3.npz")),
               atomic_path(run.file("teacher.weights.h5"), suffix=".weights.h5")]
    killed, killed_weights = [w.__enter__() for w in writers]
    kept = [run.file("notes.tmp"), run.file(".hidden"), run.file("stages.json.tmp"),
            run.file("early_stopping", "best-2.npz")]
    for path in kept:
        open(path, "w").close()
    assert os.path.exists(killed) and os.path.exists(killed_weights)
    again = RunDir(out, CFG, resume=True)
    assert not os.path.exists(killed) and not os.path.exists(killed_weights)
    assert all(os.path.exists(path) for path in kept)
    assert again.done("data") == {}


def test_the_run_entries_name_everything_a_full_run_writes(tmp_path, capsys):
    from kd_keras.cli import main
    from kd_keras.pipeline.workdir import _run_entry
    from pipeline import tiny_run

    base = tiny_run.make_world(tmp_path)
    config = tiny_run.write_config(
        tmp_path / "run.yaml", base, **{"distill.baseline": True,
                                        "export": {"formats": ["saved_model"]}})
    assert main(["distill", config]) == 0, capsys.readouterr().err
    names = sorted(set(os.listdir(base["output"])) - {MARKER})
    assert "export" in names and "student_without_distillation.keras" in names
    assert [name for name in names if not _run_entry(name)] == []
    assert not _run_entry("notes.txt") and not _run_entry("mine")


def test_a_failed_fresh_run_keeps_a_folder_holding_a_users_file(tmp_path, capsys, monkeypatch):
    import keras

    from kd_keras.cli import main
    from pipeline import tiny_run

    base = tiny_run.make_world(tmp_path)
    keras.utils.set_random_seed(0)
    tiny_run.ids_teacher(num_classes=3).save(base["teacher"]["model"])  # Fails after "data".
    config = tiny_run.write_config(tmp_path / "run.yaml", base)
    partial = base["output"] + ".partial"
    finish = RunDir.finish

    def finish_and_add_notes(self, name, record=None, files=()):
        finish(self, name, record, files)
        if name == "data":  # The user's file, while the run works.
            with open(os.path.join(partial, "notes.txt"), "w") as f:
                f.write("mine")

    monkeypatch.setattr(RunDir, "finish", finish_and_add_notes)
    assert main(["distill", config]) == 2
    err = capsys.readouterr().err
    assert "logits" in err and f"({partial} is kept: it holds files the run did not write)" in err
    assert open(os.path.join(partial, "notes.txt")).read() == "mine"
    monkeypatch.undo()
    os.remove(os.path.join(partial, "notes.txt"))
    assert main(["distill", config]) == 2  # Without it, a failed run leaves nothing.
    assert not os.path.exists(partial)


def test_starting_over_says_what_it_removes(tmp_path, capsys):
    from kd_keras.config import RunConfig

    out = str(tmp_path / "run")
    _interrupted(out)
    RunDir(out, RunConfig(verbose=1)).close()
    err = capsys.readouterr().err
    assert f"starting over: the interrupted run in {out}.partial is removed (finished: " \
           "data); --resume continues it instead" in err


def test_resume_on_a_finished_run_says_it_is_finished(tmp_path):
    out = str(tmp_path / "run")
    run = RunDir(out, CFG)
    run.publish()
    run.close()
    with pytest.raises(UsageError, match=rf"no interrupted run to resume at {out}.partial "
                                         rf"\(the run at {out} is finished\)"):
        RunDir(out, CFG, resume=True)


def _a_folder_outside(tmp_path):
    victim = tmp_path / "victim"
    (victim / "distill").mkdir(parents=True)
    (victim / "distill" / "precious.txt").write_text("mine")
    return victim


@pytest.mark.parametrize("where", ["backup", "backup/distill", "teacher_outputs/train",
                                   "student.keras"])
def test_a_resume_refuses_a_symlink_inside_the_run(tmp_path, where):
    # Followed, a `backup` link let Keras's BackupAndRestore delete
    # `victim/distill` when training ended.
    out = str(tmp_path / "run")
    partial = _interrupted(out)
    victim = _a_folder_outside(tmp_path)
    link = os.path.join(partial, *where.split("/"))
    os.makedirs(os.path.dirname(link), exist_ok=True)
    os.symlink(victim, link)
    with pytest.raises(UsageError) as e:
        RunDir(out, CFG, resume=True)
    assert str(e.value) == (f"--resume: {partial} holds {where}, a symlink, which kd_keras "
                            "never writes; remove it yourself to resume")
    assert (victim / "distill" / "precious.txt").read_text() == "mine"
    assert os.path.islink(link)


def test_a_resume_refuses_a_fifo_instead_of_waiting_on_it(tmp_path):
    out = str(tmp_path / "run")
    partial = _interrupted(out)
    stages = os.path.join(partial, "stages.json")
    os.remove(stages)
    os.mkfifo(stages)
    with pytest.raises(UsageError) as e:
        RunDir(out, CFG, resume=True)
    assert str(e.value) == (f"--resume: {partial} holds stages.json, a FIFO, which kd_keras "
                            "never writes; remove it yourself to resume")


@pytest.mark.parametrize("name", ["backup/mine.txt", "backup/distill/notes.txt",
                                  "backup/distill-early-stopping/best.txt"])
def test_a_resume_refuses_a_users_file_in_the_backup(tmp_path, name):
    # Keras's BackupAndRestore deletes its folder when training ends, and the
    # run deletes `backup/` once finished: a user's file there would go.
    out = str(tmp_path / "run")
    partial = _interrupted(out)
    for killed in ("backup/distill/latest.weights.h5", "backup/distill/training_metadata.json",
                   "backup/distill-early-stopping/best-2.npz",
                   "backup/distill-ray/checkpoint_000001/model.keras"):
        path = os.path.join(partial, *killed.split("/"))  # A SIGKILLed run's last epoch.
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "w").close()
    mine = os.path.join(partial, *name.split("/"))
    os.makedirs(os.path.dirname(mine), exist_ok=True)
    with open(mine, "w") as f:
        f.write("mine")
    with pytest.raises(UsageError) as e:
        RunDir(out, CFG, resume=True)
    assert str(e.value) == (f"--resume: {partial} holds {name}, which the interrupted run "
                            "did not write; move it out to resume")
    assert open(mine).read() == "mine"
    os.remove(mine)
    run = RunDir(out, CFG, resume=True)
    assert run.done("teacher") is None  # the resume is accepted: new work begins
    run.close()  # The killed run's own files are its.
    from kd_keras.files.ownership import foreign_files
    assert foreign_files(partial, MARKER) == []


def test_a_resume_does_not_claim_a_users_model(tmp_path):
    # Claimed, `mymodel.keras` was listed as the run's, and the next run
    # into the same output deleted it.
    from kd_keras.files.ownership import foreign_files

    out = str(tmp_path / "run")
    partial = _interrupted(out)
    with open(os.path.join(partial, "mymodel.keras"), "w") as f:
        f.write("mine")
    RunDir(out, CFG, resume=True).close()
    assert foreign_files(partial, MARKER) == ["mymodel.keras"]


def test_a_refused_resume_does_not_claim_a_users_file_under_a_run_name(tmp_path):
    """`logs/` is a name the run writes, so a file there is taken as the
    killed run's last work, but only once the resume is accepted: a resume
    refused first (changed data, say) leaves it the user's, and starting
    over then refuses to delete it."""
    from kd_keras.files.ownership import foreign_files

    out = str(tmp_path / "run")
    partial = _interrupted(out)
    notes = os.path.join(partial, "logs", "NOTES.txt")
    os.makedirs(os.path.dirname(notes))
    with open(notes, "w") as f:
        f.write("mine")
    run = RunDir(out, CFG, resume=True)
    assert run.done("data") is not None  # checked, then refused by the caller:
    run.close()
    assert foreign_files(partial, MARKER) == ["logs/NOTES.txt"]
    with pytest.raises(UsageError, match="holds logs/NOTES.txt, which"):
        RunDir(out, CFG)
    assert open(notes).read() == "mine"
    # Accepted (a stage the interrupted run did not finish begins), it is
    # the killed run's.
    run = RunDir(out, CFG, resume=True)
    assert run.done("teacher") is None
    run.close()
    assert foreign_files(partial, MARKER) == []
