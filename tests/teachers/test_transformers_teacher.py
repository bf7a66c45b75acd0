import numpy as np

from kd_keras.teachers import load_teacher
from tests.teachers.conftest import VOCAB
from tests.teachers.conftest import random_tokens


def test_transformers_teacher_matches_the_keras_conversion(
    tiny_bert_classifier_dir, rng
):
    torch_teacher = load_teacher(tiny_bert_classifier_dir, runtime="torch")
    keras_teacher = load_teacher(tiny_bert_classifier_dir)
    tokens = random_tokens(rng)

    assert not torch_teacher.in_graph and torch_teacher.model is None
    # Two runtimes (PyTorch and TensorFlow) on one checkpoint.
    np.testing.assert_allclose(
        torch_teacher.predict_on_batch(tokens),
        keras_teacher.predict_on_batch(tokens),
        atol=1e-4,
    )
    assert torch_teacher.fingerprint() == load_teacher(
        tiny_bert_classifier_dir, runtime="torch"
    ).fingerprint()


def test_raw_text_is_tokenized_with_the_checkpoint_vocab(tiny_bert_classifier_dir):
    teacher = load_teacher(
        tiny_bert_classifier_dir, runtime="torch", sequence_length=8
    )
    ids = [VOCAB.index(t) for t in ["[CLS]", "good", "film", "!", "[SEP]"]]
    tokens = {
        "token_ids": np.array([ids + [0, 0, 0]]),
        "padding_mask": np.array([[1] * 5 + [0] * 3]),
        "segment_ids": np.zeros((1, 8), "int32"),
    }
    np.testing.assert_allclose(
        teacher.predict_on_batch([b"Good FILM!"]),
        teacher.predict_on_batch(tokens),
        atol=1e-6,
    )
