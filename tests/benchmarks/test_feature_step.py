"""Tests for benchmarks/feature_step.py (the methods it builds and its
ratios, not timings)."""

import numpy as np

from conftest import load_benchmark

feature_step = load_benchmark("feature_step")


def test_three_distillers_of_the_text_cnn_recipe(tmp_path):
    from kd_keras.pipeline import data_stage

    cfg = feature_step.step_config(str(tmp_path), max_examples=40)
    assert cfg.student.architecture == "text_cnn" and cfg.distill.augment.copies == 0
    data = data_stage.prepare_data(cfg)
    methods, models = feature_step.make_methods(cfg, data, str(tmp_path / "store"))
    names = [feature_step.LOGITS, feature_step.FEATURES_IN_BATCH, feature_step.TERM]
    assert list(methods) == names
    # Logits only for the first two, the config's pooled term for the third:
    # student `features` (300 wide) projected to the teacher's 384.
    assert [len(models[n].features) for n in names] == [0, 0, 1]
    (term,) = models[feature_step.TERM].features
    assert (term.teacher_layer, term.student_layer, term.loss) == (
        "classifier/pooling", "features", "cosine")
    # Every method starts from the same student weights.
    first = models[names[0]].student.get_weights()
    for name in names[1:]:
        for a, b in zip(first, models[name].student.get_weights()):
            np.testing.assert_array_equal(a, b)
    assert methods[feature_step.TERM]() > 0  # one epoch runs
    # Built from the first batch: the teacher's width comes from the data.
    (projection,) = models[feature_step.TERM].projections
    assert tuple(projection.inner.kernel.shape) == (300, feature_step.TEACHER_WIDTH)


def test_the_default_recipe_times_the_shipped_demos_student_and_term(tmp_path):
    """`--recipe default`: the student and the term that the default recipe
    picks for the demo's data, without the copies (the same batches)."""
    from kd_keras.config.recipe import POOLED_TERM
    from kd_keras.config.recipe import STUDENT
    from kd_keras.pipeline import data_stage

    data = data_stage.prepare_data(
        feature_step.step_config(str(tmp_path), max_examples=40, recipe="default"))
    cfg = data.config
    assert (cfg.student.architecture, cfg.distill.augment.copies) == (STUDENT, 0)
    assert cfg.distill.features == (POOLED_TERM,)
    assert data.ids["train"].shape[1] == cfg.student.sequence_length
    methods, models = feature_step.make_methods(cfg, data, str(tmp_path / "store"))
    assert [len(models[n].features) for n in methods] == [0, 0, 1]
    assert methods[feature_step.TERM]() > 0


def test_ratios_pair_each_round_with_logits_only():
    times = {feature_step.LOGITS: [1.0, 2.0, 4.0],
             feature_step.FEATURES_IN_BATCH: [1.0, 2.2, 4.0],
             feature_step.TERM: [1.1, 2.4, 4.4]}
    ratios = feature_step.ratios(times)
    assert ratios[f"{feature_step.TERM} / {feature_step.LOGITS}"] == 1.1
    assert ratios[f"{feature_step.FEATURES_IN_BATCH} / {feature_step.LOGITS}"] == 1.0
