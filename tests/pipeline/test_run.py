import glob
import json
import os

import keras
import numpy as np
import pytest

import distill_helpers
from kd_keras.cli import main
from kd_keras.config import load_config
from kd_keras.pipeline import run_distill


@pytest.fixture(scope="module")
def teacher_path(tmp_path_factory):
    return distill_helpers.shared_teacher(tmp_path_factory)


@pytest.mark.slow
def test_agnews_end_to_end_with_only_paths_changed(tmp_path, teacher_path, capsys):
    """AG News (4 string classes, no header): results.json in the API shape,
    the export report, TensorBoard logs and curves; accuracies re-computed
    independently from the saved models."""
    out = str(tmp_path / "run")
    config = distill_helpers.write_config(tmp_path / "ag.yaml", teacher_path, out)
    assert main(["distill", config]) == 0
    assert "distilled student" in capsys.readouterr().out
    assert not os.path.exists(out + ".partial")

    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    assert results["labels"] == ["Business", "Sci/Tech", "Sports", "World"]
    for key in ("teacher", "student", "student_without_distillation"):
        assert set(results[key]) >= {"accuracy", "params"}
        assert 0.0 <= results[key]["accuracy"] <= 1.0
    assert results["export"] == os.path.join(out, "export", "report.json")

    # Independent check of the reported accuracies.
    cfg = load_config(config)
    ds = distill_helpers._SHARED["data"]
    x_test = distill_helpers._SHARED["encoder"](ds.texts["test"])
    y_test = ds.labels["test"]
    assert results["teacher"]["accuracy"] == pytest.approx(
        distill_helpers.teacher_accuracy(teacher_path, x_test, y_test))
    student = keras.saving.load_model(os.path.join(out, "student.keras"), safe_mode=True)
    logits = student.predict(x_test, verbose=0)
    assert results["student"]["accuracy"] == pytest.approx(float(np.mean(logits.argmax(-1) == y_test)))
    assert results["student"]["params"] == student.count_params()
    assert cfg.data.max_examples == len(y_test)

    with open(results["export"]) as f:
        report = json.load(f)
    formats = {(a["format"], a["quantization"]) for a in report["artifacts"]}
    assert formats == {("saved_model", "none"), ("tflite", "none"), ("onnx", "none"),
                       ("mediapipe", "none")}
    for artifact in report["artifacts"]:
        assert not os.path.isabs(artifact["path"])  # relative to the report
        assert os.path.exists(os.path.join(out, "export", artifact["path"])), artifact["path"]
        assert artifact["top1_agreement"] >= 0.99
    assert glob.glob(os.path.join(out, "logs", "distill", "train", "events.out.tfevents.*"))
    assert glob.glob(os.path.join(out, "logs", "baseline", "train", "events.out.tfevents.*"))
    with open(os.path.join(out, "training_curves.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("loss", ["logit_mse", "soft_target_kl"])
def test_distill_loss_from_the_config_is_the_one_trained(tmp_path, loss):
    """`distill.loss` reaches the Distiller: with alpha 0 and a learning rate
    too small to move the weights, the first epoch's loss equals the NumPy
    value of that loss at the initial weights."""
    import tensorflow as tf

    from kd_keras.config import parse_config
    from kd_keras.pipeline import PreparedData
    from kd_keras.pipeline import training_stage
    from kd_keras.pipeline.teacher_store import store_outputs
    from kd_keras.pipeline.workdir import RunDir

    cfg = parse_config({
        "data": {"builtin": "rt_polarity"}, "teacher": {"backbone": "minilm"},
        "student": {"architecture": "text_cnn", "sequence_length": 8,
                    "options": {"dropout": 0.0}},
        "distill": {"features": [], "augment": {"copies": 0}, "loss": loss, "alpha": 0.0, "temperature": 2.0, "epochs": 1,
                    "batch_size": 16, "learning_rate": 1e-12}})
    rng = np.random.default_rng(0)
    ids = {s: rng.integers(1, 100, (n, 8)).astype("int32")
           for s, n in (("train", 32), ("validation", 8), ("test", 8))}
    labels = {s: rng.integers(0, 2, len(x)) for s, x in ids.items()}
    teacher = {s: (3 * rng.standard_normal((len(x), 2))).astype("float32")
               for s, x in ids.items()}
    from kd_keras.data import TextDataset

    dataset = TextDataset(texts={s: [""] * len(x) for s, x in ids.items()}, labels=labels,
                          label_names=["a", "b"])
    data = PreparedData(dataset=dataset, ids=ids, vocab_size=100, vocabulary="unused")
    run = RunDir(str(tmp_path / "run"), cfg.replace(verbose=0))
    outputs = store_outputs(run.file("teacher_outputs"), ids, teacher, "test-teacher", 2)
    history = training_stage.train_student(cfg.replace(verbose=0), data, run, "distill",
                                           outputs, tf.distribute.get_strategy()).history

    keras.utils.set_random_seed(cfg.seed)
    s = training_stage.configured_student(cfg, 2, 100).predict(ids["train"], verbose=0).astype("float64")
    t = teacher["train"].astype("float64")
    if loss == "logit_mse":
        expected = np.mean((t - s) ** 2)
    else:
        def log_softmax(z):
            z = z / 2.0
            return z - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)) - z.max(1, keepdims=True)
        p = np.exp(log_softmax(t))
        expected = np.mean(np.sum(p * (log_softmax(t) - log_softmax(s)), 1)) * 4.0
    np.testing.assert_allclose(history["loss"][0], expected, rtol=1e-4)


@pytest.mark.slow
def test_word_replacement_copies_use_the_teachers_nearest_words():
    """`distill.augment.replace_prob`: every replaced word is among the 10
    nearest whole words of the original by cosine similarity of MiniLM's
    word embeddings, computed here with NumPy from the checkpoint."""
    from safetensors.numpy import load_file

    from kd_keras.config import parse_config
    from kd_keras.pipeline import load_data
    from kd_keras.teachers import minilm_dir

    cfg = parse_config({
        "data": {"builtin": "rt_polarity", "max_examples": 40},
        "teacher": {"backbone": "all-MiniLM-L6-v2"},
        "distill": {"augment": {"copies": 1, "word_dropout": 0.0, "ngram_prob": 0.0,
                                "replace_prob": 0.5}}})
    data = load_data(cfg)
    n = len(data.texts["train"]) // 2
    assert (data.labels["train"][n:] == -1).all()
    path = minilm_dir()
    emb = load_file(os.path.join(path, "model.safetensors"))["embeddings.word_embeddings.weight"]
    vocab = [line.rstrip("\n") for line in open(os.path.join(path, "vocab.txt"), encoding="utf-8")]
    whole = np.array([v.isalpha() for v in vocab])
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    row = {v: i for i, v in enumerate(vocab)}
    replaced = 0
    for original, copy in zip(data.texts["train"][:n], data.texts["train"][n:]):
        for a, b in zip(original.split(), copy.split(), strict=True):
            if a != b:
                sims = np.where(whole, unit @ unit[row[a]], -np.inf)
                sims[row[a]] = -np.inf
                assert b in [vocab[j] for j in np.argsort(-sims)[:10]], (a, b)
                replaced += 1
    assert replaced > 50


@pytest.mark.slow
def test_feature_terms_and_schedules_from_the_config(tmp_path):
    """`distill.features` and `distill.schedules` reach the Distiller: the
    history has the term and the scheduled alpha, alpha moves as the linear
    schedule says, and the saved student is the bare student (no projection)."""
    from kd_keras.data import WordPieceEncoder
    from kd_keras.teachers import minilm_dir
    from pipeline import resume_helpers as rh

    train = rh.sentences(64, seed=0)
    rh.write_tsv(tmp_path / "train.tsv", train)
    rh.write_tsv(tmp_path / "test.tsv", rh.sentences(16, seed=1))
    enc = WordPieceEncoder(os.path.join(minilm_dir(), "vocab.txt"), 12)
    teacher = keras.Sequential([
        keras.Input((12,), dtype="int32"), keras.layers.Embedding(enc.vocab_size, 6),
        keras.layers.GlobalAveragePooling1D(name="pooled"), keras.layers.Dense(2)])
    teacher.save(str(tmp_path / "teacher.keras"))
    config = rh.write_config(
        tmp_path / "f.yaml", str(tmp_path), {"model": str(tmp_path / "teacher.keras")},
        str(tmp_path / "out"),
        export={"formats": ["tflite"], "quantization": ["none"], "text": False},
        distill={"epochs": 2, "baseline": True, "early_stopping": None,
                 "features": [{"teacher_layer": "pooled", "student_layer": "features",
                               "weight": 0.5, "name": "pooled_mse"}],
                 "schedules": {"alpha": {"type": "linear", "start": 0.5, "end": 0.1}}})
    results = run_distill(load_config(config))
    with open(tmp_path / "out" / "history.json") as f:
        history = json.load(f)["distill"]
    assert len(history["pooled_mse"]) == 2 and all(v > 0 for v in history["pooled_mse"])
    assert history["alpha"][0] > history["alpha"][1] >= 0.1 - 1e-6  # from 0.5 towards 0.1
    student = keras.saving.load_model(str(tmp_path / "out" / "student.keras"), safe_mode=True)
    baseline = keras.saving.load_model(
        str(tmp_path / "out" / "student_without_distillation.keras"), safe_mode=True)
    assert student.count_params() == baseline.count_params() == results["student"]["params"]
    with open(tmp_path / "out" / "export" / "report.json") as f:
        report = json.load(f)
    assert report["reference"]["params"] == baseline.count_params()  # no projection exported


def test_prune_vocabulary_keeps_the_ids_each_training_reads(tmp_path):
    """`student.prune_vocabulary: true`: the distilled student's table has a
    row per id of every training row (unlabeled ones included), one for
    padding (these rows have none) and one shared; the student alone, which
    trains on the labelled rows only, per id of those; both are saved as
    students that read the full vocabulary."""
    import tensorflow as tf

    from kd_keras.config import parse_config
    from kd_keras.data import TextDataset
    from kd_keras.pipeline import PreparedData
    from kd_keras.pipeline import training_stage
    from kd_keras.pipeline.teacher_store import store_outputs
    from kd_keras.pipeline.workdir import RunDir

    cfg = parse_config({
        "data": {"builtin": "rt_polarity"}, "teacher": {"backbone": "minilm"},
        "student": {"architecture": "text_cnn", "sequence_length": 8, "prune_vocabulary": True,
                    "options": {"embedding_dim": 4, "filters": 2}},
        "distill": {"epochs": 1, "batch_size": 16, "features": [], "augment": {"copies": 0}},
        "verbose": 0})
    rng = np.random.default_rng(0)
    ids = {s: rng.integers(1, 50, (n, 8)).astype("int32")
           for s, n in (("train", 32), ("validation", 8), ("test", 8))}
    ids["train"][24:] += 50  # Unlabeled rows, with ids of their own.
    labels = {s: rng.integers(0, 2, len(x)) for s, x in ids.items()}
    labels["train"][24:] = -1
    teacher = {s: rng.standard_normal((len(x), 2)).astype("float32") for s, x in ids.items()}
    dataset = TextDataset(texts={s: [""] * len(x) for s, x in ids.items()}, labels=labels,
                          label_names=["a", "b"])
    data = PreparedData(dataset=dataset, ids=ids, vocab_size=100, vocabulary="unused")
    run = RunDir(str(tmp_path / "run"), cfg)
    strategy = tf.distribute.get_strategy()
    outputs = store_outputs(run.file("teacher_outputs"), ids, teacher, "test-teacher", 2)
    distilled = training_stage.train_student(cfg, data, run, "distill", outputs, strategy).model
    alone = training_stage.train_student(cfg, data, run, "baseline", None, strategy).model
    for model, rows in ((distilled, ids["train"]), (alone, ids["train"][:24])):
        table = model.get_layer("vocabulary_map").table.numpy()
        used = np.union1d([0], rows)  # 0: padding, which always keeps row 0
        rows_of_embedding = model.get_layer("text_cnn").get_layer("embedding").input_dim
        assert rows_of_embedding == len(used) + 1
        np.testing.assert_array_equal(table[used], np.arange(len(used)))
        assert (np.delete(table, used) == len(used)).all()
        assert model.predict(ids["test"], verbose=0).shape == (8, 2)


@pytest.mark.slow
def test_two_workers_run_the_cli_under_multi_worker_strategy(tmp_path):
    """`distribute: {strategy: multi_worker}`: each worker runs `kd-keras
    distill` with its own `TF_CONFIG` and output folder. The strategy is made
    before any TensorFlow op (it configures the collective ops), both runs
    finish, and synchronous training leaves both with the same student."""
    from pipeline import tiny_run
    from tests.distribute.cluster import run_workers

    base = tiny_run.make_world(tmp_path)
    path = tiny_run.write_config(tmp_path / "mw.yaml", base, **{
        "distribute.strategy": "multi_worker", "distill.epochs": 2})
    outputs = [str(tmp_path / f"worker{i}") for i in range(2)]
    results = run_workers("kd_keras", lambda i: ["distill", path, "--output", outputs[i]])
    for status, output in results:
        assert status == 0, output
    weights = [keras.saving.load_model(os.path.join(out, "student.keras"),
                                       safe_mode=True).get_weights() for out in outputs]
    for a, b in zip(*weights, strict=True):
        np.testing.assert_array_equal(a, b)
    with open(os.path.join(outputs[0], "history.json")) as f:
        assert len(json.load(f)["distill"]["loss"]) == 2
