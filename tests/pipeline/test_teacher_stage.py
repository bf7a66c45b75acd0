"""`teacher_stage`: the named teacher outputs on every row, and one teacher
pass for the unlabeled rows of a backbone run with feature terms and for a
ready teacher with feature terms."""

import os

import keras
import numpy as np
import pytest

import kd_keras
from kd_keras.config import parse_config
from kd_keras.data import SPLITS
from kd_keras.data import TextDataset
from kd_keras.pipeline.data_stage import PreparedData
from kd_keras.pipeline.teacher_stage import TeacherState
from kd_keras.pipeline.teacher_stage import compute_features


def _count_passes(monkeypatch):
    """Records the row count of each `teacher_stage.run_teacher` call."""
    from kd_keras.pipeline import teacher_stage

    passes = []
    run_teacher = teacher_stage.run_teacher

    def counted(model, x, *args, **kwargs):
        passes.append(len(x))
        return run_teacher(model, x, *args, **kwargs)

    monkeypatch.setattr(teacher_stage, "run_teacher", counted)
    return passes


@pytest.mark.parametrize("feature_dtype", ["float32", "float16"])
def test_compute_features_equals_numpy_on_every_row(tmp_path, feature_dtype):
    """Logits, pooled `[n, d]` and per-token `[n, seq, d]` outputs of an ids
    teacher equal the NumPy float64 lookup, across batch boundaries (150
    rows is two full batches of 64 and a tail of 22); with
    `distill.feature_dtype: float16` the layers are held rounded to float16
    and the logits stay float32."""
    vocab, seq, dim = 50, 7, 5
    ids_in = keras.Input((seq,), dtype="int32")
    tokens = keras.layers.Embedding(vocab, dim, name="tokens")(ids_in)
    pooled = keras.layers.GlobalAveragePooling1D(name="pooled")(tokens)
    teacher = keras.Model(ids_in, keras.layers.Dense(2, name="head")(pooled))
    (tmp_path / "train.tsv").write_text("a good film\t1\n")
    teacher.save(str(tmp_path / "t.keras"))
    cfg = parse_config({
        "data": {"train": "train.tsv"}, "teacher": {"model": "t.keras"},
        "distill": {"features": [
            {"teacher_layer": "pooled", "student_layer": "features"},
            {"teacher_layer": "tokens", "student_layer": "embedding", "name": "tok"}],
            "feature_dtype": feature_dtype}},
        base_dir=str(tmp_path))
    rng = np.random.default_rng(0)
    sizes = {"train": 150, "validation": 64, "test": 3}
    ids = {s: rng.integers(0, vocab, (n, seq)).astype("int32") for s, n in sizes.items()}
    dataset = TextDataset(texts={s: ["x"] * n for s, n in sizes.items()},
                          labels={s: np.zeros(n, "int32") for s, n in sizes.items()},
                          label_names=["neg", "pos"])
    data = PreparedData(dataset=dataset, ids=ids, vocab_size=vocab, vocabulary="vocab.txt")
    state = TeacherState(teacher=None, model=teacher, params=None, route="test",
                         reads_ids=True)

    features = compute_features(cfg, data, state)

    table = np.asarray(teacher.get_layer("tokens").get_weights()[0], np.float64)
    kernel, bias = (np.asarray(w, np.float64) for w in teacher.get_layer("head").get_weights())
    for split in SPLITS:
        looked_up = table[ids[split]]
        layers = features[split].layers
        assert set(layers) == {"pooled", "tokens"}
        assert layers["tokens"].dtype == layers["pooled"].dtype == np.dtype(feature_dtype)
        assert features[split].logits.dtype == np.float32
        # Rounded to the nearest float16: within half a unit in the last place.
        tol = ({"rtol": 2.0 ** -11 * 1.001, "atol": 1e-7} if feature_dtype == "float16"
               else {"atol": 1e-6})
        np.testing.assert_allclose(layers["tokens"], looked_up, **tol)
        np.testing.assert_allclose(layers["pooled"], looked_up.mean(1), **tol)
        np.testing.assert_allclose(features[split].logits, looked_up.mean(1) @ kernel + bias,
                                   atol=1e-5)


POOLED = "classifier/pooling"
BLOCK = "classifier/backbone/transformer_layer_0"


@pytest.mark.parametrize("layers", [[POOLED], [POOLED, BLOCK]])
def test_backbone_route_with_features_runs_the_teacher_once_per_text(tmp_path, monkeypatch,
                                                                      layers):
    """A pooled-vector term: the adaptation reads every text and its own
    pass (the tuned top block on the cached activations of the frozen one)
    gives the logits and the pooled vectors; the whole teacher never runs
    again. A term at another layer: the adaptation sees only the labelled
    training rows and the validation split, and one pass per split labels
    the rest. Either way every split's logits and pooled vectors equal the
    saved teacher's own Keras forward pass on the raw strings (padded to
    its full length, not bucketed) within 1e-4 (relative 1e-5: this tiny
    teacher's exact head gives logits near 50)."""
    import tensorflow as tf

    from kd_keras import teachers
    from kd_keras.pipeline import data_stage
    from kd_keras.pipeline import teacher_stage
    from kd_keras.pipeline.workdir import RunDir
    from pipeline import resume_helpers as rh
    from teachers.conftest import save_tiny_bert

    bert = str(tmp_path / "bert")
    save_tiny_bert(bert, initializer_range=0.02)
    rh.write_tsv(tmp_path / "train.tsv", rh.sentences(60, seed=0))
    rh.write_tsv(tmp_path / "test.tsv", rh.sentences(20, seed=1))
    cfg = parse_config({
        "data": {"train": "train.tsv", "test": "test.tsv", "labels_fraction": 0.5},
        "teacher": {"backbone": bert, "sequence_length": 16, "fine_tune": {
            "train_backbone": True, "top_layers": 1, "epochs": 1, "batch_size": 16}},
        "student": {"sequence_length": 12},
        "distill": {"augment": {"copies": 2},
                    "features": [{"teacher_layer": layer, "student_layer": "features",
                                  "name": f"t{i}"} for i, layer in enumerate(layers)]},
        "verbose": 0}, base_dir=str(tmp_path))
    data = data_stage.prepare_data(cfg)
    seen = []
    adapt = teachers.adapt_text_teacher

    def recording(model, texts, labels, *args, **kwargs):
        seen.append({s: list(t) for s, t in texts.items()})
        return adapt(model, texts, labels, *args, **kwargs)

    monkeypatch.setattr(teachers, "adapt_text_teacher", recording)
    passes = _count_passes(monkeypatch)
    run = RunDir(str(tmp_path / "run"), cfg)
    state = teacher_stage.adapt_teacher(cfg, data, run, None)
    outputs = teacher_stage.compute_outputs(cfg, data, state, run)

    train, labels = data.dataset.texts["train"], data.labels["train"]
    assert (labels < 0).sum() > len(labels) // 2  # the copies and the masked half
    if layers == [POOLED]:
        assert seen == [{s: list(data.dataset.texts[s]) for s in SPLITS}]
        assert passes == []  # no second pass of the whole teacher
    else:
        assert seen == [{"train": [t for t, y in zip(train, labels) if y >= 0],
                         "validation": list(data.dataset.texts["validation"])}]
        assert passes == [len(data.labels[s]) for s in SPLITS]  # one pass per split
    again = teachers.build_text_teacher(bert, data.num_classes, sequence_length=16)
    again.load_weights(os.path.join(run.path, "teacher.weights.h5"))
    classifier = again.classifier
    both = keras.Model(classifier.input,
                       [classifier.output, classifier.get_layer("pooling").output])
    for split in SPLITS:  # One store: a cache per split, logits and features together.
        expected, pooled = both(again.tokens(tf.constant(list(data.dataset.texts[split]))))
        cache = kd_keras.cache.load(os.path.join(run.path, "teacher_outputs", split))
        assert cache.logits().shape == (len(data.labels[split]), 2)
        np.testing.assert_allclose(cache.logits(), expected.numpy(), atol=1e-4, rtol=1e-5)
        np.testing.assert_allclose(cache.features(POOLED), pooled.numpy(), atol=1e-4,
                                   rtol=1e-5)
        assert set(cache.feature_names) == set(layers)
        np.testing.assert_array_equal(outputs.logits(split), cache.logits())


def test_ready_teacher_with_features_runs_once_without_the_cache(tmp_path, monkeypatch):
    """A ready Keras teacher with feature terms: the features' pass gives the
    logits (one pass per split, no `predict_on_batch`), with the cache on
    or off, and both go into the run's store, a cache per split. The
    logits equal the teacher's own `predict` on the ids."""
    from kd_keras.pipeline import data_stage
    from kd_keras.pipeline import teacher_stage
    from kd_keras.pipeline.workdir import RunDir
    from pipeline import resume_helpers as rh

    rh.write_tsv(tmp_path / "train.tsv", rh.sentences(40, seed=0))
    seq = 10
    ids_in = keras.Input((seq,), dtype="int32")
    tokens = keras.layers.Embedding(30522, 4, name="tokens")(ids_in)
    pooled = keras.layers.GlobalAveragePooling1D(name="pooled")(tokens)
    keras.Model(ids_in, keras.layers.Dense(2)(pooled)).save(str(tmp_path / "t.keras"))
    passes = _count_passes(monkeypatch)
    for cache in (False, True):
        cfg = parse_config({
            "data": {"train": "train.tsv"}, "teacher": {"model": "t.keras"},
            "student": {"sequence_length": seq},
            "distill": {"cache_teacher": cache, "features": [
                {"teacher_layer": "pooled", "student_layer": "features"}]},
            "verbose": 0}, base_dir=str(tmp_path))
        data = data_stage.prepare_data(cfg)
        run = RunDir(str(tmp_path / f"run-{cache}"), cfg)
        state = teacher_stage.adapt_teacher(cfg, data, run, None)
        predicted = []
        monkeypatch.setattr(state.teacher, "predict_on_batch",
                            lambda x, f=state.teacher.predict_on_batch: predicted.append(len(x))
                            or f(x))
        passes.clear()
        outputs = teacher_stage.compute_outputs(cfg, data, state, run)

        assert passes == [len(data.labels[s]) for s in SPLITS]  # the features' pass
        assert predicted == []  # no second pass for the logits
        for split in SPLITS:
            if not len(data.labels[split]):
                assert outputs.cache(split) is None
                continue
            stored = kd_keras.cache.load(os.path.join(run.path, "teacher_outputs", split))
            np.testing.assert_allclose(
                stored.logits(), state.model.predict(data.ids[split], verbose=0), atol=1e-5)
            assert stored.features("pooled").shape == (len(data.labels[split]), 4)


def test_float16_targets_that_overflow_are_one_line():
    """A layer with values beyond float16's 65504 is refused by name, not
    stored as inf; the same layer in float32 is kept as is."""
    from kd_keras.errors import ConfigError
    from kd_keras.pipeline.teacher_stage import run_teacher

    inputs = keras.Input((2,))
    big = keras.layers.Dense(3, kernel_initializer="ones", name="big")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(big))
    x = np.array([[1.0, 2.0], [4e4, 5e4]], "float32")  # row 2: 9e4 in "big"
    with pytest.raises(ConfigError) as e:
        run_teacher(model, x, ["big"], batch_size=1, feature_dtype="float16")
    assert str(e.value).startswith("distill.feature_dtype: float16 cannot hold the teacher "
                                   "layer 'big' (values up to 9e+04")
    assert "\n" not in str(e.value)
    kept = run_teacher(model, x, ["big"], feature_dtype="float32").layers["big"]
    np.testing.assert_allclose(kept, np.repeat(x.astype(np.float64).sum(1, keepdims=True), 3, 1))


def test_ready_teacher_logits_with_the_cache_or_without(tmp_path, monkeypatch):
    """Logits only: with `cache_teacher` on (the cache builder) or off (a
    local pass), the logits come from `batch_forward`, the one batch
    function, and equal the teacher's own `predict` on the ids."""
    import kd_keras.teachers.forward as forward_lib
    from kd_keras.pipeline import data_stage
    from kd_keras.pipeline import teacher_stage
    from kd_keras.pipeline.workdir import RunDir
    from pipeline import resume_helpers as rh

    rh.write_tsv(tmp_path / "train.tsv", rh.sentences(40, seed=0))
    seq = 10
    keras.utils.set_random_seed(0)
    keras.Sequential([keras.Input((seq,), dtype="int32"), keras.layers.Embedding(30522, 4),
                      keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2)]
                     ).save(str(tmp_path / "t.keras"))
    calls, original = [], forward_lib.batch_forward

    def counted(teacher, layers=()):
        calls.append(tuple(layers))
        return original(teacher, layers)

    monkeypatch.setattr(forward_lib, "batch_forward", counted)
    stored = {}
    for cache in (False, True):
        cfg = parse_config({
            "data": {"train": "train.tsv"}, "teacher": {"model": "t.keras"},
            "student": {"sequence_length": seq},
            "distill": {"cache_teacher": cache, "features": []}, "verbose": 0},
            base_dir=str(tmp_path))
        data = data_stage.prepare_data(cfg)
        run = RunDir(str(tmp_path / f"run-{cache}"), cfg)
        state = teacher_stage.adapt_teacher(cfg, data, run, None)
        calls.clear()
        teacher_stage.compute_outputs(cfg, data, state, run)
        assert calls and set(calls) == {()}
        for split in SPLITS:
            if len(data.labels[split]):
                stored[cache, split] = kd_keras.cache.load(
                    os.path.join(run.path, "teacher_outputs", split)).logits()
                np.testing.assert_allclose(stored[cache, split],
                                           state.model.predict(data.ids[split], verbose=0),
                                           atol=1e-5)
    for split in SPLITS:
        if (False, split) in stored:
            np.testing.assert_array_equal(stored[False, split], stored[True, split])


def test_a_teacher_sequence_longer_than_the_checkpoint_is_one_line_naming_the_key(tmp_path):
    from kd_keras.errors import ConfigError
    from kd_keras.pipeline import data_stage
    from kd_keras.pipeline import teacher_stage
    from kd_keras.pipeline.workdir import RunDir
    from pipeline import resume_helpers as rh
    from teachers.conftest import save_tiny_bert

    bert = str(tmp_path / "bert")
    save_tiny_bert(bert)  # 64 positions
    rh.write_tsv(tmp_path / "train.tsv", rh.sentences(40, seed=0))
    rh.write_tsv(tmp_path / "test.tsv", rh.sentences(20, seed=1))
    cfg = parse_config({
        "data": {"train": "train.tsv", "test": "test.tsv"},
        "teacher": {"backbone": bert, "sequence_length": 128},
        "student": {"architecture": "text_cnn", "sequence_length": 12},
        "verbose": 0}, base_dir=str(tmp_path))
    data = data_stage.prepare_data(cfg)
    run = RunDir(str(tmp_path / "run"), cfg)
    with pytest.raises(ConfigError, match=r"^teacher.sequence_length: 128 is more than the "
                                          r"64 positions the checkpoint .* was trained for$"):
        teacher_stage.adapt_teacher(cfg, data, run, None)
    run.close()


@pytest.mark.parametrize("layer", ["pooling", "nope"])
def test_a_feature_the_text_teacher_does_not_offer_is_refused_before_it_trains(tmp_path,
                                                                             layer):
    """The text teacher's hook takes any name until it runs, which was after
    the teacher's fine-tuning: the name is checked against what it offers."""
    from kd_keras import teachers
    from kd_keras.errors import ConfigError
    from kd_keras.pipeline import teacher_stage
    from teachers.conftest import save_tiny_bert

    bert = str(tmp_path / "bert")
    save_tiny_bert(bert)
    model = teachers.build_text_teacher(bert, 2, sequence_length=16)
    cfg = parse_config({
        "data": {"builtin": "rt_polarity"}, "teacher": {"backbone": bert},
        "distill": {"features": [{"teacher_layer": layer, "student_layer": "features"}]}})
    with pytest.raises(ConfigError, match=r"^distill.features\[0\].teacher_layer: the teacher "
                                          rf"offers no feature '{layer}' \(close matches: "):
        teacher_stage.check_teacher_layers(cfg, model)
    ok = parse_config({
        "data": {"builtin": "rt_polarity"}, "teacher": {"backbone": bert},
        "distill": {"features": [{"teacher_layer": "classifier/pooling",
                                  "student_layer": "features"}]}})
    teacher_stage.check_teacher_layers(ok, model)
