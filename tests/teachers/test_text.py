import numpy as np
import pytest

from kd_keras.teachers import word_embeddings
from tests.teachers.conftest import VOCAB
from tests.teachers.conftest import save_tiny_bert


def test_word_embeddings_are_the_checkpoints_rows_in_vocabulary_order(tmp_path):
    path = str(tmp_path / "bert")
    reference = save_tiny_bert(path).embeddings.word_embeddings.weight.detach().numpy()
    vocabulary, embeddings = word_embeddings(path)
    assert vocabulary == VOCAB
    assert embeddings.dtype == np.float32 and embeddings.shape == reference.shape
    np.testing.assert_array_equal(embeddings, reference)


def test_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(Exception, match="nowhere"):
        word_embeddings(str(tmp_path / "nowhere"))


def test_a_sequence_longer_than_the_checkpoints_positions_is_one_line(tmp_path):
    from kd_keras.errors import UsageError
    from kd_keras.teachers import build_text_teacher

    path = str(tmp_path / "bert")
    save_tiny_bert(path)  # 64 positions
    assert build_text_teacher(path, 2, sequence_length=64).classifier is not None
    with pytest.raises(UsageError, match=r"^sequence_length: 65 is more than the 64 "
                                         r"positions the checkpoint .* was trained for$"):
        build_text_teacher(path, 2, sequence_length=65)
