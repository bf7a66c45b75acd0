"""`kd_keras.students.vocabulary`: a student pruned to the ids its training
rows use computes what the same student on the full vocabulary computes when
each id's row is the row its pruned id was given, is saved and loaded safely,
and refuses a student without an id input by name."""

import keras
import numpy as np
import pytest

from kd_keras.errors import ConfigError
from kd_keras.files.models import load_model
from kd_keras.students import mlp
from kd_keras.students import prune_vocabulary
from kd_keras.students import text_cnn
from kd_keras.students import used_vocabulary
from kd_keras.students.vocabulary import VocabularyMap

VOCAB, SEQ = 200, 10
OPTIONS = {"sequence_length": SEQ, "embedding_dim": 6, "filters": 4, "dropout": 0.0}


def _train_ids():
    rng = np.random.default_rng(0)
    return rng.choice(np.arange(0, VOCAB, 3), size=(40, SEQ)).astype("int32")


def _pruned(train_ids):
    return prune_vocabulary(lambda n: text_cnn(2, vocab_size=n, **OPTIONS),
                            used_vocabulary(train_ids, VOCAB))


def test_the_table_numbers_the_used_ids_in_order_and_shares_one_row_for_the_rest():
    train = _train_ids()
    vocabulary = used_vocabulary(train, VOCAB)
    used = sorted(set(train.ravel().tolist()))
    assert vocabulary.size == len(used) + 1
    for i in range(VOCAB):
        expected = used.index(i) if i in used else len(used)
        assert vocabulary.table[i] == expected, i
    with pytest.raises(ValueError, match=r"\[0, 200\)"):
        used_vocabulary(np.array([[1, 200]]), VOCAB)


def test_a_pruned_student_computes_the_full_students_logits():
    """Reference: the plain `text_cnn` on all 200 ids, its embedding row `i`
    set to the pruned row of `i`, every other weight copied."""
    train = _train_ids()
    keras.utils.set_random_seed(1)
    pruned = _pruned(train)
    inner = pruned.get_layer("text_cnn")
    table = pruned.get_layer("vocabulary_map").table.numpy()
    full = text_cnn(2, vocab_size=VOCAB, **OPTIONS)
    weights = [w.numpy() for w in inner.weights]
    full.set_weights([weights[0][table]] + weights[1:])
    ids = np.random.default_rng(2).integers(0, VOCAB, (16, SEQ)).astype("int32")
    assert (ids % 3 != 0).any()  # Ids no training row uses: they share the last row.
    np.testing.assert_allclose(pruned.predict(ids, verbose=0), full.predict(ids, verbose=0),
                               atol=1e-6)
    emb = inner.get_layer("embedding").embeddings.shape
    assert tuple(emb) == (len(np.unique(train)) + 1, 6)
    # The parameters: the pruned table, the rest of the CNN and the map.
    assert pruned.count_params() == full.count_params() - (VOCAB - emb[0]) * 6 + VOCAB


def test_a_pruned_student_is_saved_and_loaded_with_safe_mode(tmp_path):
    pruned = _pruned(_train_ids())
    path = str(tmp_path / "student.keras")
    pruned.save(path)
    loaded = load_model(path)
    assert isinstance(loaded.get_layer("vocabulary_map"), VocabularyMap)
    ids = np.random.default_rng(3).integers(0, VOCAB, (8, SEQ)).astype("int32")
    np.testing.assert_array_equal(loaded.predict(ids, verbose=0), pruned.predict(ids, verbose=0))
    assert loaded.get_layer("text_cnn").get_layer("features") is not None


def test_a_student_without_an_id_input_is_refused_by_name():
    vocabulary = used_vocabulary(_train_ids(), VOCAB)
    with pytest.raises(ConfigError, match=r"^student.prune_vocabulary: needs a student with "
                                          r"one integer id input"):
        prune_vocabulary(lambda n: mlp(2, input_shape=(4,)), vocabulary)


def test_a_feature_term_finds_the_pruned_students_features_layer():
    from kd_keras.distillation.feature_views import resolve

    assert resolve(_pruned(_train_ids()), "features", "student_layer").key == "text_cnn/features"


def test_min_count_keeps_the_ids_used_often_enough_against_a_python_count():
    from collections import Counter

    train = np.random.default_rng(4).integers(0, VOCAB, (30, SEQ)).astype("int32")
    counts = Counter(train.ravel().tolist())
    for min_count in (1, 2, 3):
        kept = sorted({0} | {i for i, c in counts.items() if c >= min_count})  # 0: padding
        vocabulary = used_vocabulary(train, VOCAB, min_count=min_count)
        assert vocabulary.size == len(kept) + 1
        expected = [kept.index(i) if i in kept else len(kept) for i in range(VOCAB)]
        assert vocabulary.table.tolist() == expected


def test_the_map_is_int16_and_exports_as_a_builtin_gather(tmp_path):
    """An int16 table halves the map in an exported model; LiteRT runs it
    with builtin ops and gives the Keras logits."""
    from ai_edge_litert.interpreter import Interpreter

    from kd_keras.export import export_model

    pruned = _pruned(_train_ids())
    assert pruned.get_layer("vocabulary_map").table.dtype == "int16"
    ids = np.random.default_rng(5).integers(0, VOCAB, (8, SEQ)).astype("int32")
    report = export_model(pruned, tmp_path / "out", formats=("tflite",),
                          representative_data=ids, validation_data=(ids, None),
                          latency_runs=0)
    (entry,) = report["artifacts"]
    interpreter = Interpreter(model_path=entry["path"])
    interpreter.allocate_tensors()
    assert any(t["dtype"] == np.int16 for t in interpreter.get_tensor_details())
    run = interpreter.get_signature_runner()
    logits = np.concatenate([run(token_ids=ids[i:i + 1])["logits"] for i in range(len(ids))])
    np.testing.assert_allclose(logits, pruned.predict(ids, verbose=0), atol=1e-5)


def test_min_count_needs_prune_vocabulary_in_the_config():
    from kd_keras.config import parse_config

    raw = {"data": {"builtin": "rt_polarity"}, "teacher": {"backbone": "minilm"}}
    cfg = parse_config({**raw, "student": {"prune_vocabulary": True, "vocabulary_min_count": 3}})
    assert cfg.student.vocabulary_min_count == 3
    with pytest.raises(ConfigError, match="^student.vocabulary_min_count: needs "
                                          "student.prune_vocabulary: true"):
        parse_config({**raw, "student": {"vocabulary_min_count": 3}})
    with pytest.raises(ConfigError, match="^student.vocabulary_min_count: must be an integer"):
        parse_config({**raw, "student": {"prune_vocabulary": True, "vocabulary_min_count": 0}})
    cfg = parse_config({**raw, "student": {"prune_vocabulary": True,
                                            "vocabulary_max_rows": 4800}})
    assert cfg.student.vocabulary_max_rows == 4800
    with pytest.raises(ConfigError, match="^student.vocabulary_max_rows: needs "
                                          "student.prune_vocabulary: true"):
        parse_config({**raw, "student": {"vocabulary_max_rows": 4800}})
    with pytest.raises(ConfigError, match="^student.vocabulary_max_rows: must be an integer"):
        parse_config({**raw, "student": {"prune_vocabulary": True, "vocabulary_max_rows": 1}})


def test_max_rows_keeps_the_most_used_ids_against_a_python_count():
    from collections import Counter

    train = np.random.default_rng(6).integers(0, VOCAB, (30, SEQ)).astype("int32")
    counts = Counter(train.ravel().tolist())
    ranked = [0] + sorted(set(counts) - {0}, key=lambda i: (-counts[i], i))  # 0: padding
    for max_rows in (2, 11, 50, 10_000):
        kept = sorted(ranked[:max_rows - 1])
        vocabulary = used_vocabulary(train, VOCAB, max_rows=max_rows)
        assert vocabulary.size == len(kept) + 1 <= max_rows
        assert vocabulary.table.tolist() == [kept.index(i) if i in kept else len(kept)
                                             for i in range(VOCAB)]
    both = used_vocabulary(train, VOCAB, min_count=3, max_rows=11)
    kept = sorted(i for i in ranked[:10] if i == 0 or counts[i] >= 3)
    assert both.size == len(kept) + 1


@pytest.mark.parametrize("kwargs", [{}, {"min_count": 2}, {"max_rows": 3}])
def test_padding_keeps_row_0_when_the_training_rows_have_none(kwargs):
    # Row 0 went to the smallest used id (5 here), which tiny_bert then
    # masked as padding, while the real padding was attended.
    train = np.array([[5, 7, 7, 9], [9, 7, 5, 5]], "int32")
    vocabulary = used_vocabulary(train, 12, **kwargs)
    assert vocabulary.table[0] == 0
    assert (vocabulary.table[1:] != 0).all()


def test_a_pruned_tiny_bert_masks_padding_as_the_full_one_does():
    """Reference: the full-vocabulary tiny_bert with each id's row set to its
    pruned row; training rows without padding, inputs with it."""
    from kd_keras.students import tiny_bert

    options = {"sequence_length": 8, "hidden_dim": 8, "num_layers": 1, "num_heads": 2,
               "intermediate_dim": 16, "dropout": 0.0}
    train = np.arange(5, 50, dtype="int32").reshape(5, 9)[:, :8]
    keras.utils.set_random_seed(4)
    pruned = prune_vocabulary(lambda n: tiny_bert(2, vocab_size=n, **options),
                              used_vocabulary(train, VOCAB))
    table = pruned.get_layer("vocabulary_map").table.numpy()
    inner = pruned.layers[-1]
    full = tiny_bert(2, vocab_size=VOCAB, **options)
    weights = [w.numpy() for w in inner.weights]
    rows = [i for i, w in enumerate(weights) if w.shape[0] == table.max() + 1]
    assert len(rows) == 1
    weights[rows[0]] = weights[rows[0]][table]
    full.set_weights(weights)
    ids = np.array([[41, 28, 11, 29, 0, 0, 0, 0], [6, 7, 0, 0, 0, 0, 0, 0]], "int32")
    np.testing.assert_allclose(pruned.predict(ids, verbose=0), full.predict(ids, verbose=0),
                               atol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"max_rows": 2.5}, r"^max_rows: must be a whole number >= 2, got 2.5$"),
    ({"max_rows": 0}, r"^max_rows: must be a whole number >= 2, got 0$"),
    ({"min_count": 0}, r"^min_count: must be a whole number >= 1, got 0$"),
])
def test_row_limits_that_keep_no_used_id_are_refused(kwargs, message):
    from kd_keras.errors import UsageError
    from kd_keras.students.vocabulary import used_vocabulary

    with pytest.raises(UsageError, match=message):
        used_vocabulary(np.array([[1, 2, 2]]), 5, **kwargs)
