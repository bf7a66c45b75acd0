"""`kd_keras.data.text_lines`: the one reader of line-oriented text
(`--text-data`, `--labels`, `vocab.txt`, predict's standard input)."""

import os
import threading

import pytest

from kd_keras.data.text_lines import decode_lines
from kd_keras.data.text_lines import read_lines
from kd_keras.data.text_lines import read_text_data
from kd_keras.data.tokenizer import load_vocabulary
from kd_keras.errors import DataError
from kd_keras.errors import MissingFileError


def test_a_byte_order_mark_is_not_part_of_the_first_sentence(tmp_path):
    path = tmp_path / "bom.tsv"
    path.write_bytes("good film\tpos\nbad film\tneg\n".encode("utf-8-sig"))
    texts, y = read_text_data(str(path), ["neg", "pos"])
    assert texts == ["good film", "bad film"] and y.tolist() == [1, 0]
    # Only at the start: further on, U+FEFF is a character of the text.
    assert decode_lines([b"a\n", "\ufeffb".encode()], "s", "sentences") == ["a", "\ufeffb"]


def test_lines_end_at_line_feeds_only(tmp_path):
    # A carriage return inside a line is text, as TF-Text reads a vocab.txt
    # (text mode would split there and shift every later token's id).
    path = tmp_path / "vocab.txt"
    path.write_bytes(b"[PAD]\r\n[UNK]\na\rb\n[CLS]\n[SEP]\n[MASK]\n")
    assert load_vocabulary(str(path)) == ["[PAD]", "[UNK]", "a\rb", "[CLS]", "[SEP]", "[MASK]"]


def test_the_line_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"fine\n\nna\xefve\n")
    with pytest.raises(DataError, match=r"t.txt: line 3: not valid UTF-8 text \(at byte 2\); "
                                        r"sentences \(--text-data\) must be UTF-8$"):
        read_text_data(str(path))


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "labels.txt"
    os.mkfifo(fifo)
    outcome = []
    reader = threading.Thread(target=lambda: outcome.append(_error(read_lines, str(fifo))),
                              daemon=True)
    reader.start()
    reader.join(10)
    assert outcome and "not a regular file (a FIFO, device or socket), not a file of class names" in outcome[0]


def _error(function, *args):
    try:
        function(*args, "class names")
    except DataError as e:
        return str(e)
    return None


def test_missing_files_and_folders_are_named(tmp_path):
    with pytest.raises(MissingFileError, match=r"nope.txt: not found \(a file of sentences\)"):
        read_lines(str(tmp_path / "nope.txt"), "sentences")
    with pytest.raises(DataError, match="is a folder, not a file of sentences"):
        read_lines(str(tmp_path), "sentences")


@pytest.mark.parametrize("content, message", [
    ("\n \n", "no sentences"),
    ("good\tpos\nbad\n", "line 2: expected a sentence, or a sentence, a TAB and a label"),
    ("good\tmeh\n", "line 1: unknown label 'meh' (known: neg, pos)"),
])
def test_text_data_errors_name_the_line(tmp_path, content, message):
    path = tmp_path / "t.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_text_data(str(path), ["neg", "pos"])


def test_class_ids_must_be_below_the_model_s_classes(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("good\t1\nbad\t2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 2: unknown label '2' \(class ids 0..1\)"):
        read_text_data(str(path), num_classes=2)
    texts, y = read_text_data(str(path), num_classes=3)
    assert texts == ["good", "bad"] and y.tolist() == [1, 2]
