"""Feature terms against independent float64 NumPy references, the layer
lookup, and the one-line errors for bad input."""

import keras
import numpy as np
import pytest

import kd_keras
from kd_keras.distillation import feature_losses
from kd_keras.distillation.feature_views import FeatureView
from kd_keras.distillation.feature_views import resolve
from kd_keras.distillation.transformer_terms import transformer_terms
from kd_keras.distillation.transformer_terms import uniform_layer_map
from kd_keras.errors import UsageError

N = 12


def mlp(name, hidden, activation, hidden_name):
    return keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(hidden, activation=activation, name=hidden_name),
        keras.layers.Dense(4, name="logits")], name=name)


def data(rng, n=N):
    x = rng.normal(size=(n, 6)).astype("float32")
    y = rng.integers(0, 4, size=n).astype("int32")
    y[::3] = -1
    w = rng.uniform(0.5, 2.0, size=n).astype("float32")
    return x, y, w


def dense64(layer, x):
    kernel, bias = (np.asarray(v, np.float64) for v in layer.get_weights())
    return x @ kernel + bias


def term_values(distiller, x, y, w):
    """The Distiller's logged term values on one batch (evaluate)."""
    distiller.compile(optimizer="sgd", alpha=0.5, temperature=1.0)
    return distiller.evaluate(x, y, sample_weight=w, batch_size=len(x),
                              return_dict=True, verbose=0)


def test_mse_and_cosine_terms_equal_numpy(rng):
    x, y, w = data(rng)
    teacher = mlp("teacher", 16, "relu", "t_hidden")
    student = mlp("student", 8, "tanh", "s_hidden")
    distiller = kd_keras.Distiller(teacher, student, features=[
        kd_keras.FeatureDistillation("t_hidden", "s_hidden", loss="mse"),
        kd_keras.FeatureDistillation("t_hidden", "s_hidden", loss="cosine",
                                     projection="dense", name="cos"),
        kd_keras.FeatureDistillation("logits", "logits", loss="mse",
                                     projection=None, name="logit_mse")])
    got = term_values(distiller, x, y, w)

    x64 = x.astype(np.float64)
    t = np.maximum(dense64(teacher.get_layer("t_hidden"), x64), 0)
    s = np.tanh(dense64(student.get_layer("s_hidden"), x64))
    mse_proj, cos_proj = distiller.projections
    s_mse = dense64(mse_proj.inner, s)
    s_cos = dense64(cos_proj.inner, s)
    mse = ((s_mse - t) ** 2).mean(-1)
    cos = 1 - (t * s_cos).sum(-1) / (
        np.linalg.norm(t, axis=-1) * np.linalg.norm(s_cos, axis=-1))
    t_logits = dense64(teacher.get_layer("logits"), t)
    s_logits = dense64(student.get_layer("logits"), s)
    logit_mse = ((t_logits - s_logits) ** 2).mean(-1)
    for key, values in (("s_hidden_mse", mse), ("cos", cos),
                        ("logit_mse", logit_mse)):
        # The mean over the batch, weighted, unlabeled examples included.
        assert got[key] == pytest.approx((values * w).sum() / N, abs=1e-5)
    assert set(got) >= {"s_hidden_mse", "cos", "logit_mse"}


def bert(name, layers, hidden, heads, vocab=40, seq=7):
    import keras_hub

    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=vocab, num_layers=layers, num_heads=heads,
        hidden_dim=hidden, intermediate_dim=2 * hidden, dropout=0.0,
        max_sequence_length=seq, name=f"{name}_backbone")
    ids = keras.Input((seq,), dtype="int32", name="ids")
    mask = keras.ops.cast(keras.ops.not_equal(ids, 0), "int32")
    out = backbone({"token_ids": ids, "segment_ids": keras.ops.zeros_like(ids),
                    "padding_mask": mask})
    logits = keras.layers.Dense(3, name="head")(out["pooled_output"])
    return keras.Model(ids, logits, name=name), backbone


def numpy_layer_norm(x, layer):
    gamma, beta = (np.asarray(v, np.float64) for v in layer.get_weights())
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + layer.epsilon) * gamma + beta


def numpy_embeddings(backbone, ids):
    token = np.asarray(backbone.get_layer("token_embedding").embeddings,
                       np.float64)[ids]
    position = np.asarray(
        backbone.get_layer("position_embedding").position_embeddings,
        np.float64)[:ids.shape[1]]
    segment = np.asarray(backbone.get_layer("segment_embedding").embeddings,
                         np.float64)[0]
    return numpy_layer_norm(token + position + segment,
                            backbone.get_layer("embeddings_layer_norm"))


def numpy_attention(block, x, ids):
    """Attention probabilities [batch, heads, q, k] of a TransformerEncoder
    from its query/key weights (float64)."""
    mha = block._self_attention_layer
    qk, qb = (np.asarray(v, np.float64) for v in mha.query_dense.weights)
    kk, kb = (np.asarray(v, np.float64) for v in mha.key_dense.weights)
    q = np.einsum("btd,dhk->bthk", x, qk) + qb
    k = np.einsum("btd,dhk->bthk", x, kk) + kb
    scores = np.einsum("bqhk,bshk->bhqs", q, k) / np.sqrt(q.shape[-1])
    scores = np.where((ids != 0)[:, None, None, :], scores, -np.inf)
    scores -= scores.max(-1, keepdims=True)
    p = np.exp(scores)
    return p / p.sum(-1, keepdims=True)


def numpy_kl(t, s):
    """Per-head KL, teacher heads averaged in groups to the student's."""
    groups = t.shape[1] // s.shape[1]
    t = t.reshape(t.shape[0], s.shape[1], groups, *t.shape[2:]).mean(2)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.where(t > 0, t * (np.log(t) - np.log(s)), 0.0).sum(-1)
    return kl.mean(axis=(1, 2))


def test_transformer_terms_equal_numpy(rng):
    teacher, t_backbone = bert("teacher", layers=2, hidden=16, heads=4)
    student, s_backbone = bert("student", layers=1, hidden=8, heads=2)
    terms = transformer_terms(teacher, student)
    assert [t.name for t in terms] == [
        "embedding_mse", "hidden_mse_0", "attention_kl_0"]
    distiller = kd_keras.Distiller(teacher, student, features=terms)
    ids = rng.integers(1, 40, size=(5, 7)).astype("int32")
    ids[0, 4:] = 0  # padding
    ids[3, 2:] = 0
    y = np.array([0, -1, 2, 1, -1], "int32")
    w = rng.uniform(0.5, 2.0, size=5).astype("float32")
    got = term_values(distiller, ids, y, w)

    # Independent references: NumPy embeddings and attention from the
    # weights; hidden states from Keras's own sub-model of the backbone.
    t_emb = numpy_embeddings(t_backbone, ids)
    s_emb = numpy_embeddings(s_backbone, ids)
    emb_proj, hidden_proj = distiller.projections
    emb = ((dense64(emb_proj.inner, s_emb) - t_emb) ** 2).mean(axis=(1, 2))

    def hidden(backbone, name):
        sub = keras.Model(backbone.input, backbone.get_layer(name).output)
        inputs = {"token_ids": ids, "segment_ids": np.zeros_like(ids),
                  "padding_mask": (ids != 0).astype("int32")}
        return np.asarray(sub(inputs), np.float64)

    t_hidden = hidden(t_backbone, "transformer_layer_1")  # uniform: 1 <- 0
    s_hidden = hidden(s_backbone, "transformer_layer_0")
    hid = ((dense64(hidden_proj.inner, s_hidden) - t_hidden) ** 2).mean(
        axis=(1, 2))
    t_input = hidden(t_backbone, "transformer_layer_0")  # input of layer 1
    t_att = numpy_attention(t_backbone.get_layer("transformer_layer_1"),
                            t_input, ids)
    s_att = numpy_attention(s_backbone.get_layer("transformer_layer_0"),
                            s_emb, ids)
    att = numpy_kl(t_att, s_att)
    for key, values in (("embedding_mse", emb), ("hidden_mse_0", hid),
                        ("attention_kl_0", att)):
        assert got[key] == pytest.approx((values * w).sum() / 5, abs=1e-5)
    assert att.min() > 0


def test_attention_kl_function_equals_numpy(rng):
    t = rng.dirichlet(np.ones(5), size=(3, 4, 5))
    s = rng.dirichlet(np.ones(5), size=(3, 2, 5))
    t[:, :, :, -1] = 0  # a masked key in both
    s[:, :, :, -1] = 0
    t /= t.sum(-1, keepdims=True)
    s /= s.sum(-1, keepdims=True)
    got = feature_losses.attention_kl(t.astype("float32"), s.astype("float32"))
    np.testing.assert_allclose(got, numpy_kl(t, s), atol=1e-6)


def test_uniform_layer_map_and_lookup_through_nested_models():
    assert uniform_layer_map(6, 3) == (1, 3, 5)
    assert uniform_layer_map(4, 4) == (0, 1, 2, 3)
    inner = keras.Sequential([keras.Input((3,)),
                              keras.layers.Dense(5, name="hidden")],
                             name="inner")
    outer = keras.Sequential([keras.Input((3,)), inner,
                              keras.layers.Dense(2, name="out")])
    refs = [resolve(outer, spec, "student_layer")
            for spec in ("hidden", "inner/hidden:input", "out")]
    assert [r.key for r in refs] == ["inner/hidden", "inner/hidden:input",
                                     "out"]
    view = FeatureView(outer, refs)
    x = np.arange(6, dtype="float32").reshape(2, 3)
    logits, (hidden, hidden_in, out) = view(x)
    np.testing.assert_allclose(logits, outer(x), atol=1e-6)
    np.testing.assert_allclose(out, logits)
    np.testing.assert_allclose(hidden_in, x)
    np.testing.assert_allclose(hidden, inner(x), atol=1e-6)


def one_line_error(match, fn, *args, **kwargs):
    with pytest.raises(UsageError, match=match) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_bad_input_gets_one_line_errors():
    teacher = mlp("teacher", 16, "relu", "t_hidden")
    student = mlp("student", 8, "tanh", "s_hidden")
    message = one_line_error(
        r"^features\[0\].student_layer: no layer 's_hiden' in 'student' "
        r"\(close matches: s_hidden", kd_keras.Distiller, teacher, student,
        features=[kd_keras.FeatureDistillation("t_hidden", "s_hiden")])
    assert "t_hidden" not in message
    one_line_error(
        r"^features\[0\] \(s_hidden_mse\): student 's_hidden' \(None, 8\) vs "
        r"teacher 't_hidden' \(None, 16\): the shapes differ and "
        r"projection=None", kd_keras.Distiller, teacher, student,
        features=[kd_keras.FeatureDistillation("t_hidden", "s_hidden",
                                               projection=None)])
    term = kd_keras.FeatureDistillation
    one_line_error(r"^FeatureDistillation.weight: must be >= 0, got -0.5$",
                   term, "a", "b", weight=-0.5)
    one_line_error(r"^FeatureDistillation.weight: must be >= 0, got Linear",
                   term, "a", "b", weight=kd_keras.schedules.Linear(1, -1))
    one_line_error(r"^FeatureDistillation.loss: unknown loss 'l2' \(known: "
                   r"attention_kl, cosine, mse", term, "a", "b", loss="l2")
    one_line_error(r"^FeatureDistillation.weight: unknown schedule 'expo'",
                   term, "a", "b", weight={"type": "expo"})
    one_line_error(r"^FeatureDistillation.projection: unknown projection",
                   term, "a", "b", projection="conv")
    one_line_error(r"^features: two terms are named 'x'", kd_keras.Distiller,
                   teacher, student, features=[
                       term("t_hidden", "s_hidden", name="x"),
                       term("logits", "logits", name="x")])
    one_line_error(r"^features\[0\].student_layer: layer 's_hidden' \(Dense\) "
                   r"returns no attention scores", kd_keras.Distiller,
                   teacher, student, features=[
                       term("t_hidden", "s_hidden:attention")])
    distiller = kd_keras.Distiller(teacher, student)
    one_line_error(r"^alpha: unknown schedule 'warp'", distiller.compile,
                   alpha={"type": "warp"})
    one_line_error(r"^alpha: must be <= 1, got Linear", distiller.compile,
                   alpha=kd_keras.schedules.Linear(0.5, 1.5))
    one_line_error(r"^temperature: must be >= 0.01, got Step", distiller.compile,
                   temperature=kd_keras.schedules.Step([2.0, 0.0], [0.5]))


def test_transformer_terms_find_the_grouped_blocks_of_a_factorised_student(rng):
    """ALBERT (a `tiny_bert` with `embedding_dim`) keeps its blocks in groups."""
    from kd_keras.students import tiny_bert

    teacher = tiny_bert(2, vocab_size=30, sequence_length=6, num_layers=2, num_heads=2,
                        hidden_dim=8, intermediate_dim=8, name="teacher")
    student = tiny_bert(2, vocab_size=30, sequence_length=6, num_layers=2, num_heads=2,
                        hidden_dim=4, intermediate_dim=4, embedding_dim=2, name="student")
    terms = transformer_terms(teacher, student)
    assert [t.name for t in terms] == ["embedding_mse", "hidden_mse_0", "attention_kl_0",
                                       "hidden_mse_1", "attention_kl_1"]
    distiller = kd_keras.Distiller(teacher, student, features=terms)
    distiller.compile(optimizer="sgd")
    ids = rng.integers(1, 30, size=(4, 6)).astype("int32")
    history = distiller.fit(ids, np.array([0, 1, 0, 1]), epochs=1, verbose=0).history
    assert all(np.isfinite(history[t.name][0]) for t in terms)


def test_a_loss_that_does_not_fit_the_part_is_refused():
    term = kd_keras.FeatureDistillation
    teacher = mlp("teacher", 16, "relu", "t_hidden")
    student = mlp("student", 8, "tanh", "s_hidden")
    one_line_error(r"^features\[0\] \(s_hidden_attention_kl\): .*: attention_kl compares "
                   r"attention probabilities", kd_keras.Distiller, teacher, student,
                   features=[term("t_hidden", "s_hidden", loss="attention_kl")])
    t_bert, _ = bert("teacher", layers=1, hidden=8, heads=4)
    s_bert, _ = bert("student", layers=1, hidden=8, heads=2)
    attention = "{}_backbone/transformer_layer_0:attention"
    one_line_error(r"only attention_kl groups the teacher's heads into the student's",
                   kd_keras.Distiller, t_bert, s_bert, features=[
                       term(attention.format("teacher"), attention.format("student"),
                            loss="mse", projection=None)])


def test_wrong_kinds_of_arguments_are_one_line():
    teacher = mlp("teacher", 16, "relu", "t_hidden")
    student = mlp("student", 8, "tanh", "s_hidden")
    one_line_error(r"^FeatureDistillation.loss: got the class MeanAbsoluteError; give an "
                   r"instance \(MeanAbsoluteError\(\)\)", kd_keras.FeatureDistillation,
                   "t_hidden", "s_hidden", loss=keras.losses.MeanAbsoluteError)
    one_line_error(r"^teacher: expected a keras.Model holding a KerasHub transformer backbone, "
                   r"got str", transformer_terms, "bert", student)
    t_bert, _ = bert("teacher", layers=2, hidden=8, heads=2)
    s_bert, _ = bert("student", layers=1, hidden=8, heads=2)
    for layer_map in ([True], {0: True}, {"0": 1}):
        one_line_error(r"^layer_map: pair .*: layers are given by their integer index",
                       transformer_terms, t_bert, s_bert, layer_map=layer_map)


def test_a_layer_with_several_outputs_is_refused_by_name():
    def model(name):
        inputs = keras.Input((5, 3))
        out, state = keras.layers.GRU(4, return_state=True, name=f"{name}_gru")(inputs)
        joined = keras.layers.Concatenate()([out, state])
        return keras.Model(inputs, keras.layers.Dense(2)(joined), name=name)

    one_line_error(r"^student_layer: 's_gru' returns 2 outputs, not one tensor",
                   kd_keras.Distiller, model("t"), model("s"), features=[
                       kd_keras.FeatureDistillation("t_gru", "s_gru")])
