"""`--resume` reads the inputs the interrupted run read, by their contents:
a changed teacher file, vocabulary or text is refused (its finished stages
were computed from the old one), and the refused run's `OUTPUT.partial/`
stays, to resume once the input is put back."""

import os
import shutil

import keras
import pytest

from kd_keras.cli import main
from pipeline import resume_helpers as rh
from pipeline import tiny_run


def _interrupted(tmp_path, monkeypatch, stage):
    base = tiny_run.make_world(tmp_path)
    config = tiny_run.write_config(tmp_path / "run.yaml", base)
    rh.stop_after(monkeypatch, stage)
    with pytest.raises(rh.Stop):
        main(["distill", config])
    monkeypatch.undo()
    return base, config


def _other_teacher(path):
    keras.utils.set_random_seed(7)
    tiny_run.ids_teacher().save(path)


def _last_word_changed(path):
    # The student reads 6 words (8 ids with [CLS] and [SEP]) of these 7-word
    # sentences: its ids do not change, the texts a teacher reads do.
    with open(path, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f]
    assert all(len(text.split()) == 7 for text, _ in rows)
    rh.write_tsv(path, [(" ".join(text.split()[:6] + ["music"]), label)
                        for text, label in rows])


@pytest.mark.parametrize("name, change, message", [
    ("teacher.keras", _other_teacher, "--resume: teacher.model changed since the interrupted "
                                      "run (its files' contents differ)"),
    ("vocab.txt", lambda p: open(p, "a").write("zebra\n"),
     "--resume: student.vocabulary changed since the interrupted run"),
    ("test.tsv", _last_word_changed, "--resume: the test split changed since the interrupted "
                                     "run (data.test: {})"),
])
def test_a_changed_input_is_refused_and_the_partial_run_kept(
        tmp_path, monkeypatch, capsys, name, change, message):
    base, config = _interrupted(tmp_path, monkeypatch, "teacher_outputs")
    path = str(tmp_path / name)
    kept = str(tmp_path / "original")
    shutil.copyfile(path, kept)
    change(path)
    partial = base["output"] + ".partial"
    before = sorted(os.listdir(partial))
    status, lines = tiny_run.run_cli(capsys, "distill", config, "--resume")
    message = message.format(path)
    assert status == 2 and len(lines) == 1 and message in lines[0], lines
    assert sorted(os.listdir(partial)) == before  # Nothing of the interrupted run lost.
    shutil.copyfile(kept, path)  # Put back, the run resumes and finishes.
    status, lines = tiny_run.run_cli(capsys, "distill", config, "--resume")
    assert status == 0, lines
    assert os.path.isfile(os.path.join(base["output"], "results.json"))


KILL_AT_EPOCH = """
import os, sys
import keras
from kd_keras.config import load_config
from kd_keras.pipeline import run_distill


class Kill(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            os._exit(137)  # As the OOM killer or kill -9: nothing recorded.


run_distill(load_config(sys.argv[1]), extra_callbacks=[Kill()])
"""


def test_a_run_killed_hard_then_resumed_can_be_replaced_later(tmp_path, capsys):
    import subprocess
    import sys

    base = tiny_run.make_world(tmp_path)
    config = tiny_run.write_config(tmp_path / "run.yaml", base, **{"distill.epochs": 3})
    script = tmp_path / "kill.py"
    script.write_text(KILL_AT_EPOCH)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), TF_CPP_MIN_LOG_LEVEL="2")
    killed = subprocess.run([sys.executable, str(script), config], env=env,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == 137, killed.stderr[-2000:]
    status, lines = tiny_run.run_cli(capsys, "distill", config, "--resume")
    assert status == 0, lines
    # The killed session's files (its backup, logs and times) are the run's:
    # a later run replaces the published one.
    status, lines = tiny_run.run_cli(capsys, "distill", config)
    assert status == 0, lines


def test_a_run_recorded_by_an_earlier_version_is_checked_by_its_digest(
        tmp_path, monkeypatch, capsys):
    # Earlier versions recorded one digest of all the data, not one a split.
    import json

    base, config = _interrupted(tmp_path, monkeypatch, "teacher_outputs")
    stages = os.path.join(base["output"] + ".partial", "stages.json")
    with open(stages) as f:
        record = json.load(f)
    del record["data"]["split_digests"]
    record["data"]["digest"] = "0" * 16  # Not this data's.
    with open(stages, "w") as f:
        json.dump(record, f)
    status, lines = tiny_run.run_cli(capsys, "distill", config, "--resume")
    assert (status, lines) == (2, ["kd-keras distill: error: --resume: the data changed since "
                                   "the interrupted run; run without --resume to start over"])
