"""`TextTeacher.call_with_features`: the hidden states, embedding output,
attention probabilities and pooled features of a KerasHub-backbone text
teacher, named for feature terms and the cache, equal the backbone's own
layers computed separately."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kd_keras.cache import cache_teacher_outputs
from kd_keras.errors import UsageError
from kd_keras.teachers import build_text_teacher

from .conftest import save_tiny_bert

TEXTS = np.array(["the film was good .", "bad plot , boring actor", "great fun !",
                  "the story is not very funny but the music is brilliant", "dull"])
SEQ = 16
HIDDEN_1 = "classifier/backbone/transformer_layer_1"
HIDDEN_0 = "classifier/backbone/transformer_layer_0"


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("bert") / "tiny_bert")
    save_tiny_bert(path)
    return build_text_teacher(path, 3, sequence_length=SEQ)


def separately(teacher, name):
    """`name`'s output from a sub-model of the classifier, on the tokens."""
    classifier = teacher.classifier
    backbone = classifier.get_layer("backbone")
    layer = name.rsplit("/", 1)[-1]
    if name.startswith("classifier/backbone/"):
        model = keras.Model(backbone.input, backbone.get_layer(layer).output)
    else:
        model = keras.Model(classifier.input, classifier.get_layer(layer).output)
    return model(teacher.tokens(tf.constant(TEXTS)), training=False).numpy()


def test_features_equal_the_backbone_layers_computed_separately(teacher):
    weights = len(teacher.weights)
    logits, features = teacher.call_with_features(tf.constant(TEXTS))
    assert list(features) == teacher.feature_names()
    assert len(teacher.weights) == weights  # The hook adds no weights.
    np.testing.assert_allclose(logits.numpy(), teacher(tf.constant(TEXTS)).numpy(),
                               atol=1e-6, rtol=0)
    for name in (HIDDEN_0, HIDDEN_1, "classifier/pooling",
                 "classifier/backbone/embeddings_layer_norm"):
        want = separately(teacher, name)
        assert features[name].shape == want.shape
        np.testing.assert_allclose(features[name].numpy(), want, atol=1e-6, rtol=0)
    # The last layer's hidden states are the backbone's sequence output.
    tokens = teacher.tokens(tf.constant(TEXTS))
    outputs = teacher.classifier.get_layer("backbone")(tokens, training=False)
    np.testing.assert_allclose(features[HIDDEN_1].numpy(),
                               outputs["sequence_output"].numpy(), atol=1e-6, rtol=0)
    assert features[HIDDEN_1].shape == (len(TEXTS), SEQ, 32)
    # The embedding output enters layer 0; layer 1's attention from its input.
    np.testing.assert_allclose(
        features[HIDDEN_0 + ":input"].numpy(),
        separately(teacher, "classifier/backbone/embeddings_layer_norm"), atol=1e-6, rtol=0)
    layer = teacher.classifier.get_layer("backbone").get_layer("transformer_layer_1")
    out, scores = layer(features[HIDDEN_1 + ":input"],
                        padding_mask=tokens["padding_mask"], return_attention_scores=True)
    np.testing.assert_allclose(out.numpy(), features[HIDDEN_1].numpy(), atol=1e-6, rtol=0)
    attention = features[HIDDEN_1 + ":attention"].numpy()
    np.testing.assert_allclose(attention, scores.numpy(), atol=1e-6, rtol=0)
    assert attention.shape == (len(TEXTS), 2, SEQ, SEQ)
    np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-5)
    mask = tokens["padding_mask"].numpy().astype(bool)
    assert np.all(attention[~np.broadcast_to(mask[:, None, None, :], attention.shape)] < 1e-6)


def test_the_cache_stores_the_text_teachers_features(teacher, tmp_path):
    names = [HIDDEN_1, "classifier/pooling"]
    cache = cache_teacher_outputs(teacher, TEXTS, tmp_path, batch_size=2, shard_size=3,
                                  features=names, feature_dtype="float32", verbose=0)
    for name in names:
        np.testing.assert_allclose(cache.features(name), separately(teacher, name),
                                   atol=1e-5, rtol=0)
    np.testing.assert_allclose(cache.logits(), teacher(tf.constant(TEXTS)).numpy(),
                               atol=1e-5, rtol=0)
    assert cache.feature_shapes == {HIDDEN_1: (SEQ, 32), "classifier/pooling": (32,)}


def test_an_unknown_name_lists_close_matches(teacher, tmp_path):
    with pytest.raises(UsageError, match=r"^teacher_layer: 'text_teacher'.call_with_features "
                                         r"returned no feature 'classifier/backbone/"
                                         r"transformer_layer_2' \(close matches: .*"
                                         r"transformer_layer_1"):
        cache_teacher_outputs(teacher, TEXTS, tmp_path, verbose=0,
                              features=["classifier/backbone/transformer_layer_2"])
