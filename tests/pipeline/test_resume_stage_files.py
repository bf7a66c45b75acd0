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


@pytest.mark.parametrize("stage, name, damage, sections", [
    # The teacher's store is a cache per split: the message names its folder.
    ("teacher_outputs", os.path.join(TRAIN_OUTPUTS, "logits-00000.npy"), _delete, {}),
    ("teacher_outputs", os.path.join(TRAIN_OUTPUTS, "logits-00000.npy"), _truncate, {}),
    ("teacher_outputs", os.path.join(TRAIN_OUTPUTS, "metadata.json"), _truncate, {}),
    ("teacher_outputs", os.path.join(TRAIN_OUTPUTS, "feature0-00000.npy"), _delete,
     {"distill.features": FEATURES}),
    ("distill", "student.keras", _truncate, {"distill.baseline": True}),
])
def test_a_missing_or_damaged_stage_file_is_one_line(capsys, monkeypatch, tmp_path, stage, name,
                                                     damage, sections):
    base = tiny_run.make_world(tmp_path)
    config = tiny_run.write_config(tmp_path / "run.yaml", base, **sections)
    rh.stop_after(monkeypatch, stage)
    with pytest.raises(rh.Stop):
        main(["distill", config])
    monkeypatch.undo()
    path = os.path.join(base["output"] + ".partial", name)
    damage(path)
    status, lines = tiny_run.run_cli(capsys, "distill", config, "--resume")
    assert status == 2, lines
    shown = os.path.dirname(path) if name.startswith(TRAIN_OUTPUTS) else path
    assert lines == [f"kd-keras distill: error: --resume: {shown} is missing or damaged; "
                     "run without --resume to start over"]
