"""Teachers and vocabularies a user gets wrong: one line that names the
file or `teacher.model`, exit 2, instead of a traceback."""

import os
import shutil

import keras
import pytest
import tensorflow as tf

from kd_keras.errors import DataError
from kd_keras.errors import KdKerasError
from kd_keras.errors import MissingFileError
from pipeline import tiny_run

BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\xfd" * 8


@pytest.fixture
def world(tmp_path):
    return tiny_run.make_world(tmp_path)


def _distill(capsys, tmp_path, base, **changes):
    config = tiny_run.write_config(tmp_path / "run.yaml", base, **changes)
    return tiny_run.run_cli(capsys, "distill", config)


def _one_line(status, lines, *parts):
    assert status == 2, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("kd-keras distill: error: "), lines
    for part in parts:
        assert part in lines[0], lines


def test_a_binary_vocabulary_file_is_one_line(capsys, tmp_path, world):
    vocabulary = tmp_path / "some.bin"
    vocabulary.write_bytes(BINARY)
    status, lines = _distill(capsys, tmp_path, world, **{"student.vocabulary": str(vocabulary)})
    _one_line(status, lines, str(vocabulary), "UTF-8")
    assert not os.path.exists(world["output"]) and not os.path.exists(world["output"] + ".partial")


def test_a_backbone_folder_with_a_binary_vocab_txt_is_one_line(capsys, tmp_path, world):
    backbone = tmp_path / "backbone"
    backbone.mkdir()
    (backbone / "vocab.txt").write_bytes(BINARY)
    student = dict(world["student"])
    student.pop("vocabulary")
    status, lines = _distill(capsys, tmp_path, dict(world, student=student),
                             teacher={"backbone": str(backbone)})
    _one_line(status, lines, str(backbone / "vocab.txt"))


def test_a_vocabulary_without_the_special_tokens_names_the_file(tmp_path):
    from kd_keras.data import WordPieceEncoder

    path = tmp_path / "vocab.txt"
    path.write_text("good\nbad\n[PAD]\n")
    with pytest.raises(DataError, match=rf"^{path}: .*\[UNK\]"):
        WordPieceEncoder(str(path), 8)


def test_the_text_teacher_reads_its_vocabulary_through_the_same_check(tmp_path):
    from kd_keras.teachers.text import _tokenizer

    (tmp_path / "vocab.txt").write_bytes(BINARY)
    with pytest.raises(DataError, match=rf"^{tmp_path / 'vocab.txt'}: "):
        _tokenizer(str(tmp_path))
    (tmp_path / "vocab.txt").write_text("\n".join(tiny_run.VOCAB) + "\n")
    assert _tokenizer(str(tmp_path)).token_to_id("good") == tiny_run.VOCAB.index("good")


class _Ids(tf.Module):
    def __init__(self):
        super().__init__()
        self.table = tf.Variable(tf.ones([len(tiny_run.VOCAB), 2]))

    @tf.function(input_signature=[tf.TensorSpec([None, tiny_run.SEQUENCE_LENGTH], tf.int32)])
    def serve(self, ids):
        return {"logits": tf.reduce_mean(tf.gather(self.table, ids), axis=1)}


def test_a_saved_model_without_variables_names_the_folder(tmp_path):
    from kd_keras.teachers import load_teacher

    path = tmp_path / "exported"
    module = _Ids()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    assert load_teacher(str(path)).model is not None  # complete: it loads
    shutil.rmtree(path / "variables")
    with pytest.raises(MissingFileError) as info:
        load_teacher(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "variables" in message and "\n" not in message


def test_a_saved_model_teacher_without_variables_is_one_line(capsys, tmp_path, world):
    path = tmp_path / "exported"
    module = _Ids()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    shutil.rmtree(path / "variables")
    status, lines = _distill(capsys, tmp_path, world, **{"teacher.model": str(path)})
    _one_line(status, lines, "teacher.model", str(path), "variables")


def _save(model, tmp_path, name):
    path = str(tmp_path / name)
    model.save(path)
    return path


@pytest.mark.parametrize("name, build, takes", [
    ("features", lambda: keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)]),
     "float32 [batch, 5]"),
    ("ids_3d", lambda: keras.Sequential([
        keras.Input((tiny_run.SEQUENCE_LENGTH, 2), dtype="int32"),
        keras.layers.Reshape((2 * tiny_run.SEQUENCE_LENGTH,)),
        keras.layers.Embedding(len(tiny_run.VOCAB), 2),
        keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2)]),
     f"int32 [batch, {tiny_run.SEQUENCE_LENGTH}, 2]"),
])
def test_a_teacher_that_does_not_take_token_ids_is_refused_up_front(
        capsys, tmp_path, world, name, build, takes):
    path = _save(build(), tmp_path, f"{name}.keras")
    status, lines = _distill(capsys, tmp_path, world, **{"teacher.model": path})
    _one_line(status, lines, "teacher.model", path, takes,
              "[batch, sequence_length] int32 token ids")
    assert not os.path.exists(world["output"] + ".partial")


def test_a_teacher_with_several_inputs_is_refused(tmp_path, world):
    from kd_keras.pipeline.teacher_stage import check_teacher_inputs

    a, b = keras.Input((4,), dtype="int32"), keras.Input((4,), dtype="int32")
    model = keras.Model([a, b], keras.layers.Dense(2)(keras.layers.Concatenate()([a, b])))
    with pytest.raises(KdKerasError, match="^teacher.model: m.keras takes 2 inputs"):
        check_teacher_inputs(model, "m.keras")
    # What kd_keras gives a teacher passes: ids (any length) and raw strings.
    check_teacher_inputs(tiny_run.ids_teacher(), "ids.keras")
    check_teacher_inputs(keras.Sequential([keras.Input((None,), dtype="int64"),
                                           keras.layers.Embedding(4, 2)]), "ids64.keras")


def test_the_unknown_backbone_message_lists_the_known_names(tmp_path):
    from kd_keras.errors import one_line
    from kd_keras.teachers import MINILM_NAMES
    from kd_keras.teachers.bert import load_bert_backbone

    with pytest.raises(KdKerasError) as info:
        load_bert_backbone("no_such_backbone_xyz")
    message = one_line(info.value)
    assert message.startswith("no_such_backbone_xyz: ")
    assert MINILM_NAMES[0] in message and "bert_tiny_en_uncased" in message
    assert not message.rstrip().endswith(":")
