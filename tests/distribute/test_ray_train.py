"""`distribute: {engine: ray}`: the pipeline on a local Ray cluster gives the
one-process results (teacher caches byte for byte, the distilled student
within 1e-5); a killed training worker is replaced and resumes from the last
epoch. The baseline, which trains in the driver as in one process, is off."""

import filecmp
import json
import os
import time

import keras
import numpy as np
import pytest

from kd_keras.cache import load
from kd_keras.config import load_config
from kd_keras.pipeline import run_distill
from tests.pipeline import resume_helpers as rh

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow
RAY = {"engine": "ray", "address": "auto", "workers": 2, "cpus_per_worker": 1}


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Data files and a ready `.keras` teacher that reads WordPiece ids."""
    from kd_keras.data import WordPieceEncoder
    from kd_keras.teachers import minilm_dir

    root = tmp_path_factory.mktemp("ray")
    train = rh.sentences(80, seed=0)
    rh.write_tsv(root / "train.tsv", train)
    rh.write_tsv(root / "test.tsv", rh.sentences(24, seed=1))
    enc = WordPieceEncoder(os.path.join(minilm_dir(), "vocab.txt"), 12)
    keras.utils.set_random_seed(3)
    teacher = keras.Sequential([
        keras.Input((12,), dtype="int32"), keras.layers.Embedding(enc.vocab_size, 8),
        keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2)])
    y = np.array([label == "pos" for _, label in train], "int32")
    teacher.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(enc([t for t, _ in train]), y, epochs=3, verbose=0)
    teacher.save(str(root / "teacher.keras"))
    return root


def _run(workspace, name, distribute, callbacks=None):
    # Dropout off: each replica draws its own masks, so dropout differs per
    # worker count (documented); everything else must match.
    path = rh.write_config(
        workspace / f"{name}.yaml", str(workspace), {"model": str(workspace / "teacher.keras")},
        str(workspace / name), export=None, distribute=distribute,
        student={"architecture": "text_cnn", "sequence_length": 12,
                 "options": {"embedding_dim": 8, "filters": 8, "dropout": 0.0}},
        distill={"epochs": 3, "batch_size": 16, "baseline": False,
                 "early_stopping": {"patience": 1}})
    run_distill(load_config(path), extra_callbacks=callbacks)
    return str(workspace / name)


def _published(output):
    with open(os.path.join(output, "results.json")) as f:
        results = json.load(f)
    with open(os.path.join(output, "history.json")) as f:
        history = json.load(f)
    model = keras.saving.load_model(os.path.join(output, "student.keras"), safe_mode=True)
    return results, history, [w.numpy() for w in model.weights], output


def _numbers(tree, prefix=""):
    """Flattens results.json into {path: number or string}."""
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(_numbers(v, f"{prefix}{k}."))
        return out
    return {prefix: tree}


def _assert_same(run, reference):
    results, history, weights, _ = _published(run)
    ref_results, ref_history, ref_weights, _ = reference
    assert len(weights) == len(ref_weights) > 0
    for got, want in zip(weights, ref_weights):
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert history.keys() == ref_history.keys()
    for kind, logs in ref_history.items():
        for key in logs or {}:
            np.testing.assert_allclose(history[kind][key], logs[key], atol=1e-5)
    got, want = _numbers(results), _numbers(ref_results)
    assert got.keys() == want.keys()
    for key, value in want.items():
        if "latency" in key or "seconds" in key or key.startswith(("config.", "details.")):
            continue
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, abs=1e-5), key
        else:
            assert got[key] == value, key


@pytest.fixture(scope="module")
def one_process(workspace):
    return _published(_run(workspace, "local", {"engine": "local"}))


def test_training_on_ray_equals_the_one_process_training(workspace, one_process):
    from tests.distribute.ray_faults import RecordWorkers

    seen = workspace / "workers"
    seen.mkdir()
    output = _run(workspace, "on-ray", RAY, callbacks=[RecordWorkers(str(seen))])
    assert sorted(os.listdir(seen)) == ["rank-0-of-2-replicas-2", "rank-1-of-2-replicas-2"]
    _assert_same(output, one_process)
    for split in ("train", "validation", "test"):  # Ray Data built the same caches.
        ours, local = (os.path.join(o, "teacher_outputs", split) for o in (output, one_process[3]))
        assert load(ours).metadata == load(local).metadata
        for name in os.listdir(local):
            assert filecmp.cmp(os.path.join(ours, name), os.path.join(local, name), shallow=False)
    assert not os.path.exists(output + ".partial")
    assert not os.path.exists(os.path.join(output, "backup"))  # Ray checkpoints removed.


def test_a_killed_training_worker_is_replaced_and_resumes(workspace, one_process):
    from tests.distribute.ray_faults import DieAtEpoch

    marker = str(workspace / "worker-died")
    output = _run(workspace, "killed", RAY, callbacks=[DieAtEpoch(marker, epoch=2, rank=1)])
    assert os.path.exists(marker)  # Worker 1 did die, at the start of the last epoch.
    for rank in (0, 1):
        with open(f"{marker}.rank-{rank}") as f:
            epochs = [int(e) for e in f.read().split()]
        # The new group resumed from a per-epoch checkpoint, not from scratch
        # (the last one, or the one before while Ray was still registering it).
        assert epochs.count(0) == 1 and epochs.count(2) >= 1 and epochs[-1] == 2
        restart = [i for i in range(1, len(epochs)) if epochs[i] <= epochs[i - 1]]
        assert len(restart) <= 1 and (rank == 0 or restart)
    _assert_same(output, one_process)


def test_workers_the_cluster_cannot_place_are_one_line_not_a_hang(workspace, monkeypatch):
    # 3 workers of 1 CPU on this module's 2-CPU cluster: Ray Train waited
    # for them for ever. And the refusal comes before any work: it used to
    # come after the data and teacher stages, which can take an hour.
    from kd_keras.errors import UsageError
    from kd_keras.pipeline import data_stage

    def no_work(cfg):
        raise AssertionError("the data stage ran before the cluster was checked")

    monkeypatch.setattr(data_stage, "prepare_data", no_work)
    started = time.monotonic()
    with pytest.raises(UsageError, match=r"^distribute: 3 workers of 1 CPU need 3 CPUs, and "
                                         r"the Ray cluster has 2; lower distribute.workers"):
        _run(workspace, "too-many", {**RAY, "workers": 3})
    assert time.monotonic() - started < 300
    assert not os.path.exists(workspace / "too-many")


def test_ctrl_c_inside_ray_training_is_a_keyboard_interrupt(tmp_path, monkeypatch):
    # Ray's driver ends `fit` on Ctrl-C with SystemExit(1): kd-keras distill
    # exited 1 without a word, where it says "interrupted" and how to resume.
    from ray.train.tensorflow import TensorflowTrainer

    from kd_keras.distribute import RayCluster
    from kd_keras.distribute.ray_train import fit_on_ray

    def ray_on_ctrl_c(self):
        raise SystemExit(1)

    monkeypatch.setattr(TensorflowTrainer, "fit", ray_on_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        fit_on_ray(print, None, RayCluster(workers=1, cpus_per_worker=1),
                   str(tmp_path / "storage"), str(tmp_path / "result"))
