"""Each run records where its time went: `results.json["seconds"]`, kept
across `--resume`, and printed by `kd-keras distill`."""

import json
import os

import pytest

from kd_keras.cli import main
from pipeline import resume_helpers as rh
from pipeline import tiny_run

STAGES = ["data", "teacher_adaptation", "teacher_outputs", "distill", "baseline", "export"]


def _results(output):
    with open(os.path.join(output, "results.json"), encoding="utf-8") as f:
        return json.load(f)


def test_results_record_each_stage_and_the_summary_prints_them(capsys, tmp_path):
    base = tiny_run.make_world(tmp_path)
    config = tiny_run.write_config(tmp_path / "run.yaml", base)
    assert main(["distill", config]) == 0
    out = capsys.readouterr().out
    seconds = _results(base["output"])["seconds"]
    ran = [s for s in STAGES if s != "baseline"]  # the tiny run asks for no baseline
    assert list(seconds) == ran + ["total"]
    assert all(value >= 0 for value in seconds.values())
    assert seconds["total"] == pytest.approx(sum(seconds[s] for s in ran), abs=0.01)
    line = next(l for l in out.splitlines() if l.startswith("time: "))
    assert "teacher outputs" in line and "total" in line and "baseline" not in line


def test_a_resumed_run_adds_the_time_of_the_first_session(capsys, monkeypatch, tmp_path):
    base = tiny_run.make_world(tmp_path)
    config = tiny_run.write_config(tmp_path / "run.yaml", base)
    rh.stop_after(monkeypatch, "teacher_outputs")
    with pytest.raises(rh.Stop):
        main(["distill", config])
    monkeypatch.undo()
    partial = os.path.join(base["output"] + ".partial", "stage_seconds.json")
    with open(partial, encoding="utf-8") as f:
        first = json.load(f)
    # The stage the run stopped in counts too (its seconds were lost).
    assert first["teacher_outputs"] >= 0
    first["teacher_adaptation"] += 1000.0  # a marker the resumed run must keep
    with open(partial, "w", encoding="utf-8") as f:
        json.dump(first, f)
    assert main(["distill", config, "--resume"]) == 0
    seconds = _results(base["output"])["seconds"]
    assert seconds["teacher_adaptation"] >= 1000.0
    assert seconds["data"] >= first["data"]  # the data stage ran in both sessions


def test_a_damaged_seconds_file_on_resume_is_one_line(capsys, monkeypatch, tmp_path):
    base = tiny_run.make_world(tmp_path)
    config = tiny_run.write_config(tmp_path / "run.yaml", base)
    rh.stop_after(monkeypatch, "teacher_outputs")
    with pytest.raises(rh.Stop):
        main(["distill", config])
    monkeypatch.undo()
    path = os.path.join(base["output"] + ".partial", "stage_seconds.json")
    with open(path, "w", encoding="utf-8") as f:
        f.write('{"data": "soon"}')
    status, lines = tiny_run.run_cli(capsys, "distill", config, "--resume")
    assert status == 2
    assert lines == [f"kd-keras distill: error: --resume: {path} is missing or damaged; "
                     "run without --resume to start over"]
