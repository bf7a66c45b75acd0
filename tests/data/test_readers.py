import json
import os

import pytest

from kd_keras.data import DataError
from kd_keras.data import read_examples
from kd_keras.data.readers import read_labelled_file


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_tsv_without_header_keeps_quotes(tmp_path):
    p = _write(tmp_path, "a.tsv", 'he said "hi\tWorld\nok film\tSports\n')
    assert read_examples(p) == (['he said "hi', "ok film"], ["World", "Sports"])


def test_csv_with_header_by_name(tmp_path):
    p = _write(tmp_path, "a.csv", 'label,text\n1,"good, really"\n0,bad\n')
    texts, labels = read_examples(p, header=True, text_column="text", label_column="label")
    assert texts == ["good, really", "bad"]
    assert labels == ["1", "0"]


def test_a_column_given_by_name_reads_the_header_without_being_told(tmp_path):
    p = _write(tmp_path, "a.csv", 'review,sentiment\n"good, really",pos\nbad,neg\n')
    assert read_examples(p, text_column="review", label_column=1) == (
        ["good, really", "bad"], ["pos", "neg"])
    # Columns by index: the first row is an example, as before.
    assert read_examples(p) == (["review", "good, really", "bad"], ["sentiment", "pos", "neg"])


def test_a_header_read_as_an_example_is_refused_unless_header_false_says_so(tmp_path):
    rows = "".join(f"review {i},{'pos' if i % 2 else 'neg'}\n" for i in range(10))
    p = _write(tmp_path, "a.csv", "review,sentiment\n" + rows)
    with pytest.raises(DataError) as e:
        read_examples(p)
    assert str(e.value) == (
        f"{p}: line 1 looks like a header (its label 'sentiment' is on no other line); set "
        "data.header: true or name the columns, or data.header: false to keep it as an example")
    assert read_examples(p, header=True)[1] == ["neg", "pos"] * 5
    assert read_examples(p, header=False)[1] == ["sentiment"] + ["neg", "pos"] * 5
    # A first label that other lines share is an example.
    p = _write(tmp_path, "b.csv", "great,pos\n" + rows)
    assert read_examples(p)[1] == ["pos"] + ["neg", "pos"] * 5
    # A small file (a test split of a few lines) is not judged on its first line.
    p = _write(tmp_path, "c.csv", "rare one,rare\n" + "".join(rows.splitlines(True)[:8]))
    assert read_examples(p)[1][0] == "rare"


def test_a_name_with_header_false_says_how_to_read_it(tmp_path):
    p = _write(tmp_path, "a.csv", "review,sentiment\ngood,pos\n")
    with pytest.raises(DataError) as e:
        read_examples(p, header=False, text_column="review")
    assert str(e.value) == (
        f"data.text_column: column 'review' is a name but {p} is read without a header "
        "(remove `header: false` or give the column index)")


def test_jsonl_by_key(tmp_path):
    lines = [json.dumps({"t": "x y", "y": 2}), "", json.dumps({"t": "z", "y": 0})]
    p = _write(tmp_path, "a.jsonl", "\n".join(lines) + "\n")
    assert read_examples(p, text_column="t", label_column="y") == (["x y", "z"], ["2", "0"])


def test_missing_file_names_it(tmp_path):
    missing = os.path.join(str(tmp_path), "nope.tsv")
    with pytest.raises(FileNotFoundError, match="nope.tsv"):
        read_examples(missing)


@pytest.mark.parametrize(
    "content,kwargs,match",
    [
        ("a\tb\n", dict(label_column=5), "data.label_column: column 5 does not exist"),
        ("text\tlab\na\tb\n", dict(header=True, label_column="label"),
         "data.label_column: column 'label' does not exist"),
        ("a\tb\n", dict(label_column="label"), "data.label_column"),
    ],
)
def test_bad_label_column_names_key_and_file(tmp_path, content, kwargs, match):
    p = _write(tmp_path, "d.tsv", content)
    with pytest.raises(DataError, match=match) as e:
        read_examples(p, **kwargs)
    assert "\n" not in str(e.value)
    if "header" in kwargs or isinstance(kwargs["label_column"], int):
        assert "d.tsv" in str(e.value)


def test_jsonl_missing_key_and_bad_json(tmp_path):
    p = _write(tmp_path, "a.jsonl", '{"text": "a"}\n')
    with pytest.raises(DataError, match="data.label_column: key 'label'"):
        read_examples(p, text_column="text", label_column="label")
    p = _write(tmp_path, "b.jsonl", "{oops\n")
    with pytest.raises(DataError, match="b.jsonl: line 1 is not valid JSON"):
        read_examples(p, text_column="text", label_column="label")


def test_jsonl_with_windows_line_ends_reads_as_its_lines(tmp_path):
    p = str(tmp_path / "w.jsonl")
    with open(p, "wb") as f:
        f.write(b'{"text": "a", "label": 1}\r\n\r\n{"text": "b", "label": 0}\r\n')
    file = read_labelled_file(p, text_column="text", label_column="label")
    assert (file.texts, file.labels, file.lines) == (("a", "b"), (1, 0), (1, 3))


def test_a_carriage_return_between_json_tokens_does_not_split_the_record(tmp_path):
    p = str(tmp_path / "r.jsonl")
    with open(p, "wb") as f:  # "\r" is JSON whitespace; JSON Lines ends lines at "\n"
        f.write(b'{"text": "a",\r "label": 1}\n{"text": "b", "label": 0}\n')
    file = read_labelled_file(p, text_column="text", label_column="label")
    assert (file.texts, file.labels, file.lines) == (("a", "b"), (1, 0), (1, 2))


def test_unknown_format(tmp_path):
    p = _write(tmp_path, "a.xyz", "a\tb\n")
    with pytest.raises(DataError, match="data.format"):
        read_examples(p)
