"""Factorised tiny_bert embeddings, and the PCA start of tiny_bert's and
dilated_cnn's word tables from a teacher's, checked against an independent
float64 NumPy reference (an eigendecomposition of the covariance, not the
SVD the code uses)."""

import os

import numpy as np
import pytest

from kd_keras.errors import ConfigError
from kd_keras.students import dilated_cnn
from kd_keras.students import pca_embeddings
from kd_keras.students import tiny_bert

MINILM_PARAMS = 22_713_216


def _reference_pca(table, dim):
    """Centred rows on the top `dim` covariance eigenvectors, each signed so
    that its largest-magnitude coefficient is positive (float64)."""
    x = np.asarray(table, np.float64)
    centred = x - x.mean(axis=0)
    values, vectors = np.linalg.eigh(centred.T @ centred)
    top = vectors[:, np.argsort(values)[::-1][:dim]]
    signs = np.sign(top[np.abs(top).argmax(axis=0), np.arange(dim)])
    return centred @ (top * signs)


def _table(vocab=120, width=12, seed=0):
    rng = np.random.default_rng(seed)
    # Distinct variances per axis, so the principal axes are well defined.
    scales = np.linspace(2.0, 0.1, width)
    mixing, _ = np.linalg.qr(rng.normal(size=(width, width)))
    return ((rng.normal(size=(vocab, width)) * scales) @ mixing + 0.3).astype(np.float32)


def _token_table(model):
    backbone = model.get_layer(f"{model.name}_backbone")
    return np.asarray(backbone.token_embedding.embeddings)


def _expected_params(vocab, seq, e, h, inter, layers, classes):
    """ALBERT-style tiny_bert, counted by hand: word, position and segment
    embeddings and their LayerNorm at width e, the projection to h, the
    blocks (attention, 2 LayerNorms, feed-forward), the pooler and the head."""
    embeddings = vocab * e + seq * e + 2 * e + 2 * e + (e * h + h)
    block = 4 * (h * h + h) + 2 * h + (h * inter + inter) + (inter * h + h) + 2 * h
    return embeddings + layers * block + (h * h + h) + (h * classes + classes)


def test_pca_embeddings_equal_float64_reference():
    table = _table()
    got = pca_embeddings(table, 4)
    assert got.dtype == np.float32 and got.shape == (120, 4)
    np.testing.assert_allclose(got, _reference_pca(table, 4), atol=1e-5, rtol=0)


def test_factorised_tiny_bert_starts_from_the_pca_of_the_given_table():
    table = _table()
    model = tiny_bert(3, vocab_size=120, sequence_length=10, hidden_dim=16,
                      intermediate_dim=32, embedding_dim=4, embedding_init=table)
    np.testing.assert_allclose(_token_table(model), _reference_pca(table, 4),
                               atol=1e-5, rtol=0)
    assert model.count_params() == _expected_params(120, 10, 4, 16, 32, 2, 3)
    ids = np.random.default_rng(1).integers(0, 120, (4, 10)).astype("int32")
    assert np.isfinite(np.asarray(model(ids, training=False))).all()


def test_table_of_the_right_width_is_used_as_is_and_bert_uses_hidden_width():
    table = _table(width=4)
    model = tiny_bert(2, vocab_size=120, sequence_length=10, hidden_dim=16,
                      intermediate_dim=32, embedding_dim=4, embedding_init=table)
    np.testing.assert_array_equal(_token_table(model), table)
    # Without embedding_dim the BERT table has the hidden width.
    wide = _table(width=24)
    model = tiny_bert(2, vocab_size=120, sequence_length=10, hidden_dim=16,
                      intermediate_dim=32, embedding_init=wide)
    np.testing.assert_allclose(_token_table(model), _reference_pca(wide, 16),
                               atol=1e-5, rtol=0)


def test_dilated_cnn_starts_from_the_pca_of_the_given_table():
    table = _table(width=12)
    random_start = dilated_cnn(2, vocab_size=120, sequence_length=10, embedding_dim=4)
    model = dilated_cnn(2, vocab_size=120, sequence_length=10, embedding_dim=4,
                        embedding_init=table)
    got = np.asarray(model.get_layer("embedding").embeddings)
    np.testing.assert_allclose(got, _reference_pca(table, 4), atol=1e-5, rtol=0)
    assert not np.allclose(np.asarray(random_start.get_layer("embedding").embeddings),
                           _reference_pca(table, 4), atol=1e-2)
    narrow = _table(width=4)
    model = dilated_cnn(2, vocab_size=120, sequence_length=10, embedding_dim=4,
                        embedding_init=narrow)
    np.testing.assert_array_equal(np.asarray(model.get_layer("embedding").embeddings), narrow)


def test_bad_dilated_cnn_embedding_init_gets_one_line_error():
    with pytest.raises(ConfigError) as info:
        dilated_cnn(2, vocab_size=120, sequence_length=10, embedding_dim=4,
                    embedding_init=np.zeros((10, 8)))
    assert str(info.value) == (
        "student.options.embedding_init: has 10 rows but the vocabulary has 120 tokens "
        "(shape (10, 8), expected [120, >= 4])")


def test_default_tiny_bert_is_unfactorised_and_unchanged():
    """The default keeps BERT's layout: word table at the hidden width."""
    model = tiny_bert(2)
    assert _token_table(model).shape == (30522, 128)
    assert model.get_layer("tiny_bert_backbone").__class__.__name__ == "BertBackbone"
    assert model.count_params() == 4_195_202


def _minilm_table():
    from safetensors.numpy import load_file

    from kd_keras.teachers import minilm_dir

    path = os.path.join(minilm_dir(), "model.safetensors")
    return load_file(path)["embeddings.word_embeddings.weight"]


@pytest.mark.slow
def test_minilm_initialised_tiny_bert_is_over_ten_times_smaller():
    from kd_keras.students import teacher_word_embeddings
    from kd_keras.teachers import minilm_dir

    if minilm_dir() is None:
        pytest.skip("all-MiniLM-L6-v2 is not installed")
    reference = _minilm_table()
    vocabulary, table = teacher_word_embeddings("minilm")
    assert len(vocabulary) == 30522 and vocabulary[0] == "[PAD]"
    np.testing.assert_array_equal(table, reference)

    model = tiny_bert(2, vocab_size=30522, sequence_length=48, embedding_dim=32,
                      embedding_init=table)
    count = model.count_params()
    assert count == _expected_params(30522, 48, 32, 128, 256, 2, 2) == 1_264_322
    assert MINILM_PARAMS / count >= 10
    np.testing.assert_allclose(_token_table(model), _reference_pca(reference, 32),
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(embedding_dim=-3),
         "student.options.embedding_dim: must be a positive integer, got -3"),
        (dict(embedding_dim=32),
         "student.options.embedding_dim: must be at most hidden_dim (16), got 32"),
        (dict(embedding_dim=4, embedding_init=np.zeros((10, 8))),
         "student.options.embedding_init: has 10 rows but the vocabulary has 120 tokens "
         "(shape (10, 8), expected [120, >= 4])"),
        (dict(embedding_dim=4, embedding_init=np.zeros((120, 2))),
         "student.options.embedding_init: has 2 columns, fewer than the embedding width 4 "
         "(shape (120, 2), expected [120, >= 4])"),
        (dict(embedding_dim=4, embedding_init=np.zeros(120)),
         "student.options.embedding_init: must be a [vocab, dim] array or a teacher "
         "backbone name, got ndarray of shape (120,)"),
        (dict(embedding_dim=4, embedding_init=np.full((120, 8), np.nan)),
         "student.options.embedding_init: has non-finite values"),
        (dict(hidden_dim=15),
         "student.options.hidden_dim: must be divisible by num_heads (2), got 15"),
        (dict(num_layers=0), "student.options.num_layers: must be a positive integer, got 0"),
        (dict(dropout=1.0), "student.options.dropout: must be a number in [0, 1), got 1.0"),
    ],
)
def test_bad_tiny_bert_options_get_one_line_errors(kwargs, message):
    options = dict(vocab_size=120, sequence_length=10, hidden_dim=16, intermediate_dim=32)
    options.update(kwargs)
    with pytest.raises(ConfigError) as info:
        tiny_bert(2, **options)
    assert str(info.value) == message


def test_unreadable_teacher_name_gets_one_line_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        tiny_bert(2, vocab_size=120, sequence_length=10, hidden_dim=16, intermediate_dim=32,
                  embedding_dim=4, embedding_init=str(tmp_path / "no_such_checkpoint"))
    text = str(info.value)
    assert text.startswith("student.options.embedding_init: cannot read word embeddings from")
    assert "\n" not in text


def test_pca_cannot_give_more_axes_than_the_table_has():
    with pytest.raises(ConfigError, match=r"^student.options.embedding_init: cannot be "
                                          r"reduced to 13 columns by PCA"):
        pca_embeddings(_table(width=12), 13)


@pytest.mark.slow
def test_factorised_tiny_bert_saves_loads_and_exports_to_tflite(tmp_path):
    """The ALBERT-style student round-trips through `.keras` (safe mode) and
    converts to TFLite with the Keras logits (verified by `export_model`)."""
    import keras

    from kd_keras.export import export_model

    model = tiny_bert(3, vocab_size=120, sequence_length=10, hidden_dim=16,
                      intermediate_dim=32, embedding_dim=4, embedding_init=_table())
    ids = np.random.default_rng(2).integers(0, 120, (16, 10)).astype("int32")
    ids[:, 7:] = 0
    path = str(tmp_path / "student.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded(ids)), np.asarray(model(ids)), atol=1e-6)
    assert loaded.get_layer("features").output.shape == (None, 16)
    report = export_model(model, str(tmp_path / "export"), formats=("tflite",),
                          quantization=("none",), validation_data=ids, latency_runs=0)
    (artifact,) = report["artifacts"]
    assert artifact["passed"] and artifact["max_abs_diff"] <= 1e-4
