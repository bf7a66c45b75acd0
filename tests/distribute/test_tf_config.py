"""A bad `TF_CONFIG` is one line naming it, from the library and the CLI."""

import pytest

from kd_keras.distribute import get_strategy
from kd_keras.errors import UsageError
from pipeline import tiny_run

CASES = [
    ('{"cluster": ', "TF_CONFIG: not valid JSON"),
    ("[1, 2]", "TF_CONFIG: expected a JSON object"),
    ('{"cluster": {"worker": "a:1"}}', "TF_CONFIG: cluster must map each task type"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "chief", "index": 0}}',
     "TF_CONFIG: task.type must be one of ['worker'], got 'chief'"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 3}}',
     "TF_CONFIG: task.index 3 is not a position in cluster.worker (it lists 2 tasks)"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": true}}',
     "TF_CONFIG: task.index True is not a position"),
]


@pytest.mark.parametrize("tf_config, message", CASES)
def test_a_bad_tf_config_is_one_line(monkeypatch, tf_config, message):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    for name in ("auto", "multi_worker"):
        with pytest.raises(UsageError) as e:
            get_strategy(name)
        assert str(e.value).startswith(message), str(e.value)


def test_the_cli_names_tf_config(monkeypatch, tmp_path, capsys):
    base = tiny_run.make_world(tmp_path)
    config = tiny_run.write_config(tmp_path / "run.yaml", base,
                                   **{"distribute.strategy": "auto"})
    monkeypatch.setenv("TF_CONFIG", CASES[0][0])
    status, lines = tiny_run.run_cli(capsys, "distill", config)
    assert status == 2 and len(lines) == 1 and "TF_CONFIG: not valid JSON" in lines[0], lines
