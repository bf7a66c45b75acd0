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


def test_frozen_embeddings_of_another_vocabulary_or_casing_have_another_fingerprint(tmp_path):
    # The same weights with two lines of vocab.txt swapped, or lowercasing
    # turned off, hashed alike: a cache of the other teacher's logits (or
    # frozen embeddings) was served silently.
    import json
    import shutil

    from kd_keras.teachers import build_text_teacher
    from kd_keras.teachers.embeddings import EmbeddingTeacher

    first = str(tmp_path / "a")
    save_tiny_bert(first)
    swapped, cased = str(tmp_path / "b"), str(tmp_path / "c")
    for copy in (swapped, cased):
        shutil.copytree(first, copy)
    vocab = list(VOCAB)
    vocab[5], vocab[6] = vocab[6], vocab[5]
    with open(f"{swapped}/vocab.txt", "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    with open(f"{cased}/tokenizer_config.json", "w") as f:
        json.dump({"do_lower_case": False, "tokenizer_class": "BertTokenizer"}, f)
    teachers = [build_text_teacher(path, 2, sequence_length=16) for path in (first, swapped,
                                                                              cased)]
    embeddings = {EmbeddingTeacher(t).fingerprint() for t in teachers}
    assert len(embeddings) == 3
    again = build_text_teacher(first, 2, sequence_length=16)
    assert EmbeddingTeacher(again).fingerprint() == EmbeddingTeacher(teachers[0]).fingerprint()


def test_the_same_text_teacher_built_twice_has_one_fingerprint(tmp_path):
    # The tokenizer's automatic name (bert_tokenizer, bert_tokenizer_1, ...)
    # was in the config: a second build's cache of the same logits was
    # refused as another teacher's.
    from kd_keras.teachers import build_text_teacher
    from kd_keras.teachers.base import as_teacher

    path = str(tmp_path / "bert")
    save_tiny_bert(path, num_labels=2)
    first, second = (as_teacher(build_text_teacher(path, 2, sequence_length=16)).fingerprint()
                     for _ in range(2))
    assert first == second
