"""The trainings of `kd-keras distill` (`kd_keras.pipeline.training_stage`)."""

import json
import os

import keras
import numpy as np
import pytest

from kd_keras.config import load_config
from kd_keras.pipeline import run_distill
from pipeline import tiny_run


class BatchCalls(keras.callbacks.Callback):
    """Counts the batch hooks of each epoch: one per compiled call."""

    def __init__(self):
        super().__init__()
        self.per_epoch = []

    def on_epoch_begin(self, epoch, logs=None):
        self.per_epoch.append(0)

    def on_train_batch_end(self, batch, logs=None):
        self.per_epoch[-1] += 1


@pytest.mark.slow
def test_steps_per_execution_changes_no_step(tmp_path):
    """`distill.steps_per_execution` runs the same steps in the same order:
    1 and 2 (3 batches an epoch: the second call has the one batch left
    over) give identical weights and histories, for the distilled student
    and for both of the baseline's trainings."""
    base = tiny_run.make_world(tmp_path)
    runs = {}
    for steps in (1, 2):
        out = str(tmp_path / f"run-{steps}")
        path = tiny_run.write_config(
            tmp_path / f"{steps}.yaml", base, **{
                "output": out, "distill.epochs": 2, "distill.baseline": True,
                "distill.early_stopping": {"patience": 1},
                "distill.steps_per_execution": steps})
        calls = BatchCalls()
        run_distill(load_config(path), extra_callbacks=[calls])
        # 48 texts less the validation split, in batches of 16: 3 an epoch.
        assert calls.per_epoch[:2] == ([3, 3] if steps == 1 else [2, 2])
        with open(os.path.join(out, "history.json")) as f:
            history = json.load(f)
        weights = [keras.saving.load_model(os.path.join(out, name), safe_mode=True).get_weights()
                   for name in ("student.keras", "student_without_distillation.keras")]
        runs[steps] = history, weights
    history, weights = runs[1]
    assert len(history["distill"]["loss"]) == 2
    assert runs[2][0] == history
    for got, want in zip(runs[2][1], weights, strict=True):
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)


def test_steps_per_execution_is_refused_under_several_replicas(tmp_path, mirrored_strategy):
    # Keras 3.15's multi-step loop fails under MirroredStrategy with 2
    # replicas ("You must feed a value for placeholder tensor"), as under
    # MultiWorker: refused before any work, in one line.
    import tensorflow as tf

    from kd_keras.errors import ConfigError
    from kd_keras.pipeline.training_stage import check_strategy

    base = tiny_run.make_world(tmp_path)
    cfg = load_config(tiny_run.write_config(tmp_path / "run.yaml", base,
                                            **{"distill.steps_per_execution": 4}))
    with pytest.raises(ConfigError, match=r"^distill.steps_per_execution: must be 1 under a "
                                          r"strategy of 2 replicas"):
        check_strategy(cfg, mirrored_strategy)
    check_strategy(cfg, tf.distribute.get_strategy())  # One replica: runs.


def test_a_baseline_batch_that_does_not_split_over_replicas_is_refused(tmp_path,
                                                                        mirrored_strategy):
    # The Distiller builds from one replica's batch; Keras's own fit of the
    # student alone fails on 15 rows over 2 replicas ("AddN ... [8,8] != [7,8]").
    from kd_keras.errors import ConfigError
    from kd_keras.pipeline.training_stage import check_strategy

    base = tiny_run.make_world(tmp_path)
    cfg = load_config(tiny_run.write_config(tmp_path / "run.yaml", base, **{
        "distill.batch_size": 15, "distill.baseline": True}))
    with pytest.raises(ConfigError, match=r"^distill.batch_size: 15 does not split evenly "
                                          r"over 2 replicas"):
        check_strategy(cfg, mirrored_strategy)
    cfg = load_config(tiny_run.write_config(tmp_path / "run.yaml", base, **{
        "distill.batch_size": 15, "distill.baseline": False}))
    check_strategy(cfg, mirrored_strategy)  # The Distiller alone builds from one replica.


@pytest.mark.parametrize("verbose", [0, 1])
def test_a_baseline_too_small_to_hold_rows_out_says_so(capsys, verbose):
    # It trained distill.epochs without a word, where the docs promise
    # epochs chosen on a held-out tenth.
    import types

    from kd_keras.config import parse_config
    from kd_keras.pipeline.training_stage import baseline_epochs

    cfg = parse_config({"data": {"builtin": "rt_polarity"}, "teacher": {"backbone": "minilm"},
                        "distill": {"epochs": 4, "early_stopping": {"patience": 1}},
                        "verbose": verbose})
    data = types.SimpleNamespace(labels={"train": np.array([0, 1, -1] * 7)})
    assert baseline_epochs(cfg, data, run=None) == 4
    err = capsys.readouterr().err
    expected = ("baseline: 14 labelled training rows are too few to hold a tenth out (it "
                "takes 15); it trains distill.epochs (4)\n")
    assert err == (expected if verbose else "")
