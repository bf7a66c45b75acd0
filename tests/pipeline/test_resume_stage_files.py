"""`--resume` after a file of a finished stage was deleted or damaged in
`OUTPUT.partial/`: one line that names the file, exit 2, no traceback."""

import os

import pytest

from kd_keras.cli import main
from pipeline import resume_helpers as rh
from pipeline import tiny_run

FEATURES = [{"teacher_layer": "pooled", "student_layer": "features", "loss": "cosine"}]


def _delete(path):
    os.remove(path)


def _truncate(path):
    with open(path, "rb") as f:
        head = f.read(40)
    with open(path, "wb") as f:
        f.write(head)


TRAIN_OUTPUTS = os.path.join("teacher_outputs", "train")


def _resumed_after(capsys, monkeypatch, tmp_path, stage, name, damage, sections):
    """Stops a tiny run after `stage`, applies `damage` to its file `name`,
    resumes it: `(path, exit status, stderr lines)`."""
    base = tiny_run.make_world(tmp_path)
    config = tiny_run.write_config(tmp_path / "run.yaml", base, **sections)
    rh.stop_after(monkeypatch, stage)
    with pytest.raises(rh.Stop):
        main(["distill", config])
    monkeypatch.undo()
    path = os.path.join(base["output"] + ".partial", name)
    assert os.path.exists(path), sorted(os.listdir(os.path.dirname(path)))
    damage(path)
    return (path, *tiny_run.run_cli(capsys, "distill", config, "--resume"))


@pytest.mark.parametrize("stage, name, damage, sections", [
    # The teacher's store is a cache per split: the message names its folder.
    ("teacher_outputs", os.path.join(TRAIN_OUTPUTS, "logits-00000.npy"), _delete, {}),
    ("teacher_outputs", os.path.join(TRAIN_OUTPUTS, "logits-00000.npy"), _truncate, {}),
    ("teacher_outputs", os.path.join(TRAIN_OUTPUTS, "metadata.json"), _truncate, {}),
    ("teacher_outputs", os.path.join(TRAIN_OUTPUTS, "feature0-00000.npy"), _delete,
     {"distill.features": FEATURES}),
])
def test_a_missing_or_damaged_stage_file_is_one_line(capsys, monkeypatch, tmp_path, stage, name,
                                                     damage, sections):
    path, status, lines = _resumed_after(capsys, monkeypatch, tmp_path, stage, name, damage,
                                         sections)
    assert status == 2, lines
    recorded = os.path.join(str(tmp_path / "out.partial"), "teacher_outputs")
    assert lines == [f"kd-keras distill: error: --resume: {recorded} is missing or changed "
                     "since its stage finished; run without --resume to start over"]


def test_a_damaged_store_of_a_run_that_recorded_no_digest_is_one_line(capsys, monkeypatch,
                                                                     tmp_path):
    # Earlier versions recorded no digest of the store: its own checks stop it.
    import json

    def delete_and_forget_the_digest(path):
        os.remove(path)
        stages = os.path.join(str(tmp_path / "out.partial"), "stages.json")
        with open(stages) as f:
            record = json.load(f)
        del record["teacher_outputs"]["sha256"]
        with open(stages, "w") as f:
            json.dump(record, f)

    path, status, lines = _resumed_after(
        capsys, monkeypatch, tmp_path, "teacher_outputs",
        os.path.join(TRAIN_OUTPUTS, "logits-00000.npy"), delete_and_forget_the_digest, {})
    assert status == 2, lines
    assert lines == [f"kd-keras distill: error: --resume: {os.path.dirname(path)} is missing "
                     "or damaged; run without --resume to start over"]


def _replace_with_another_run_s(path):
    with open(path, "ab") as f:  # Any other bytes: another run's model, an edit.
        f.write(b"\0")


def _another_teacher_s(path):
    import json

    with open(path) as f:
        metadata = json.load(f)
    assert "teacher_fingerprint" in metadata
    metadata["teacher_fingerprint"] = "another teacher"
    with open(path, "w") as f:
        json.dump(metadata, f)


@pytest.mark.parametrize("stage, name, damage, sections", [
    # A store that still reads well, but another teacher's.
    ("teacher_outputs", os.path.join(TRAIN_OUTPUTS, "metadata.json"), _another_teacher_s, {}),
    ("distill", "student.keras", _replace_with_another_run_s, {"distill.baseline": True}),
    ("distill", "student.keras", _truncate, {"distill.baseline": True}),
    ("distill", "history-distill.json", _delete, {"distill.baseline": True}),
    ("export", os.path.join("export", "report.json"), _delete,
     {"export": {"formats": ["saved_model"]}, "distill.baseline": False}),
    ("export", os.path.join("export", "saved_model", "text_cnn", "1", "saved_model.pb"),
     _replace_with_another_run_s, {"export": {"formats": ["saved_model"]}}),
])
def test_a_finished_stage_s_file_changed_since_is_refused(capsys, monkeypatch, tmp_path, stage,
                                                         name, damage, sections):
    path, status, lines = _resumed_after(capsys, monkeypatch, tmp_path, stage, name, damage,
                                         sections)
    assert status == 2, lines
    recorded = os.path.join(str(tmp_path / "out.partial"), name.split(os.sep)[0])
    assert lines == [f"kd-keras distill: error: --resume: {recorded} is missing or changed "
                     "since its stage finished; run without --resume to start over"]


def test_a_bad_epoch_count_in_stages_json_is_one_line(capsys, monkeypatch, tmp_path):
    import json

    base = tiny_run.make_world(tmp_path)
    config = tiny_run.write_config(tmp_path / "run.yaml", base, **{
        "distill.baseline": True, "distill.epochs": 2,
        "distill.early_stopping": {"patience": 1}})
    rh.stop_after(monkeypatch, "baseline_epochs")
    with pytest.raises(rh.Stop):
        main(["distill", config])
    monkeypatch.undo()
    stages = os.path.join(base["output"] + ".partial", "stages.json")
    with open(stages) as f:
        record = json.load(f)
    for bad in ("1", 1000, True):
        record["baseline_epochs"]["epochs"] = bad
        with open(stages, "w") as f:
            json.dump(record, f)
        status, lines = tiny_run.run_cli(capsys, "distill", config, "--resume")
        assert status == 2 and len(lines) == 1, lines
        assert f"baseline_epochs: epochs {bad!r} is not a number of epochs" in lines[0]


def test_a_users_file_in_an_unrecorded_export_is_kept(capsys, monkeypatch, tmp_path):
    # An export written in full, then the run stopped before recording its
    # stage: the resumed run exports again, and deleted the user's notes.
    import json

    base = tiny_run.make_world(tmp_path)
    config = tiny_run.write_config(tmp_path / "run.yaml", base,
                                   export={"formats": ["saved_model"]})
    rh.stop_after(monkeypatch, "export")
    with pytest.raises(rh.Stop):
        main(["distill", config])
    monkeypatch.undo()
    partial = base["output"] + ".partial"
    stages = os.path.join(partial, "stages.json")
    with open(stages) as f:
        record = json.load(f)
    del record["export"]
    with open(stages, "w") as f:
        json.dump(record, f)
    notes = os.path.join(partial, "export", "NOTES.md")
    with open(notes, "w") as f:
        f.write("mine")
    status, lines = tiny_run.run_cli(capsys, "distill", config, "--resume")
    assert (status, lines) == (2, [
        f"kd-keras distill: error: --resume: {partial}/export holds NOTES.md, which the "
        "interrupted export did not write; move it out to resume"])
    assert open(notes).read() == "mine"
    os.remove(notes)
    assert tiny_run.run_cli(capsys, "distill", config, "--resume")[0] == 0
