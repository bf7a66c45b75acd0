"""Bad data is a one-line `DataError` naming the file
(and line, value, class or split), never a wrong success or a traceback."""

import json
import os

import numpy as np
import pytest

from kd_keras.cli import main
from kd_keras.data import load_text_dataset
from kd_keras.data import read_examples
from kd_keras.errors import DataError
from kd_keras.errors import MissingFileError


def _write(tmp_path, name, data):
    path = tmp_path / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8", newline="")
    return str(path)


def _rows(n, labels="ab", start=0):
    return "".join(f"text number {i}\t{labels[i % len(labels)]}\n"
                   for i in range(start, start + n))


def _error(exc_type, *args, **kwargs):
    """The one-line message of the error `load_text_dataset` raises."""
    with pytest.raises(exc_type) as info:
        load_text_dataset(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message
    return message


# Labels: unique as the data spells them.

@pytest.mark.parametrize("spellings, first, second", [
    (("0", "1", "01"), "'1'", "'01'"),
    (("0", "1", "1.0"), "'1'", "'1.0'"),
    (("0", "1", "+1"), "'1'", "'+1'"),
    (("neg", "pos", "Pos"), "'pos'", "'Pos'"),
    (("neg", "pos", "pos\u200b"), "'pos'", "'pos\\u200b'"),  # a zero-width space
    (("neg", "n\u00e9g", "ne\u0301g"), "'n\u00e9g'", "'ne\\u0301g'"),  # NFC, NFD
])
def test_two_spellings_of_one_class_are_an_error(tmp_path, spellings, first, second):
    # Before: three classes, two named '1' (one never trained), exit 0.
    rows = "".join(f"text {i}\t{spellings[i % 3]}\n" for i in range(30))
    p = _write(tmp_path, "t.tsv", rows)
    message = _error(DataError, p)
    assert message.startswith(f"{p}: line 3: label {second} and label {first} (line 2) ")
    assert "one class spelled two ways" in message


def test_jsonl_number_and_string_of_one_class_are_an_error(tmp_path):
    lines = [json.dumps({"text": f"t{i}", "label": [0, 1][i % 2]}) for i in range(20)]
    lines.append(json.dumps({"text": "last", "label": "1"}))
    p = _write(tmp_path, "t.jsonl", "\n".join(lines) + "\n")
    message = _error(DataError, p, text_column="text", label_column="label")
    assert message.startswith(f"{p}: line 21: label '1' and label 1 (line 2) ")


def test_spellings_in_two_files_name_both_files(tmp_path):
    train = _write(tmp_path, "train.tsv", _rows(20, labels=["0", "1"]))
    test = _write(tmp_path, "test.tsv", "x\t0\ny\t01\n")
    message = _error(DataError, train, test)
    assert message.startswith(f"{test}: line 2: label '01' and label '1' ({train}: line 2) ")


def test_consistent_spellings_are_kept_as_class_names_in_numeric_order(tmp_path):
    p = _write(tmp_path, "t.tsv", _rows(30, labels=["010", "2", "07"]))
    ds = load_text_dataset(p)
    assert ds.label_names == ["2", "07", "010"]
    for split in ds.texts:  # each text keeps its own label
        for text, y in zip(ds.texts[split], ds.labels[split]):
            assert ds.label_names[y] == ["010", "2", "07"][int(text.split()[-1]) % 3]


@pytest.mark.parametrize("bad, expected", [
    ("0.5", "label '0.5' is not a whole number"),
    ("pos", "label 'pos' is a name, but label '0' (PATH: line 1) is a number"),
    ("1e30", "label '1e30' is too large for a class index"),
])
def test_a_number_label_that_is_not_a_class_index_names_its_line(tmp_path, bad, expected):
    rows = _rows(20, labels=["0", "1"]) + f"odd one\t{bad}\n" + _rows(4, labels=["0", "1"])
    p = _write(tmp_path, "t.tsv", rows)
    message = _error(DataError, p)
    assert message.startswith(f"{p}: line 21: ")
    assert expected.replace("PATH", p) in message


def test_name_labels_may_look_like_anything_but_numbers(tmp_path):
    p = _write(tmp_path, "t.tsv", _rows(30, labels=["pos", "neg", "0.5x"]))
    assert load_text_dataset(p).label_names == ["0.5x", "neg", "pos"]


# Classes: at least 2 in train, every class in train.

def test_one_class_is_an_error_naming_the_file_and_the_count(tmp_path):
    # Before: a one-class "model" at 100% accuracy.
    p = _write(tmp_path, "t.tsv", _rows(30, labels=["0"]))
    assert _error(DataError, p) == (
        f"{p}: 1 class in the training labels ('0'); at least 2 are needed")


@pytest.mark.parametrize("split", ["test", "validation"])
def test_a_class_only_outside_train_names_file_class_and_split(tmp_path, split):
    train = _write(tmp_path, "train.tsv", _rows(20))
    other = _write(tmp_path, f"{split}.tsv", "x\ta\ny\tc\n")
    message = _error(DataError, train, **{split: other})
    assert message == (f"{other}: line 2: class 'c' is in the {split} split but not in "
                       f"the training file {train}")


def test_a_declared_class_without_training_examples_is_an_error(tmp_path):
    p = _write(tmp_path, "t.tsv", _rows(20))
    message = _error(DataError, p, labels=["a", "b", "c"])
    assert message == f"{p}: class 'c' of data.labels has no example in the training file"


def test_a_class_the_seeded_cut_leaves_out_of_train_is_an_error(tmp_path):
    rows = _rows(40) + "the only c\tc\n"
    p = _write(tmp_path, "t.tsv", rows)
    # Seeds whose permutation puts row 40 (the 'c') outside the first 33.
    seeds = [s for s in range(50)
             if int(np.flatnonzero(np.random.default_rng(s).permutation(41) == 40)[0]) >= 33]
    assert seeds
    message = _error(DataError, p, seed=seeds[0])
    assert message.startswith(f"{p}: class 'c' (1 example(s)) gets none in the train split")
    kept = [s for s in range(50) if s not in seeds][0]
    assert "c" in load_text_dataset(p, seed=kept).label_names


def test_a_cap_that_leaves_a_class_out_of_train_is_an_error(tmp_path):
    p = _write(tmp_path, "t.tsv", _rows(40))
    message = _error(DataError, p, max_examples=1)
    assert message.startswith("data.max_examples: 1 leaves no training example of class ")
    assert p in message


# Files too small to split (before: "x has no examples" from the cache).

def test_a_three_line_file_names_the_count_and_what_is_needed(tmp_path):
    p = _write(tmp_path, "t.tsv", "good\ta\nbad\tb\nok\ta\n")
    assert _error(DataError, p) == (
        f"{p}: 3 example(s) are too few to cut a test split (fractions 0.8, 0.1, 0.1); "
        "give at least 8, or data.validation and data.test files")


def test_the_needed_count_is_enough_for_every_larger_file():
    from kd_keras.data.text_dataset import min_examples_to_split

    def parts_non_empty(n, fractions):  # Independent: Python's round-half-even.
        edges = [0] + [round(float(x) * n) for x in np.cumsum(fractions)[:-1]] + [n]
        return all(b > a for a, b in zip(edges, edges[1:]))

    for fractions in [(0.8, 0.1, 0.1), (0.9, 0.1), (0.5, 0.3, 0.2), (0.98, 0.01, 0.01)]:
        needed = min_examples_to_split(fractions)
        assert all(parts_non_empty(n, fractions) for n in range(needed, needed + 500))
        assert needed == 1 or not parts_non_empty(needed - 1, fractions)


def test_a_tiny_train_file_with_a_test_file_names_the_validation_cut(tmp_path):
    train = _write(tmp_path, "train.tsv", "good\ta\nbad\tb\nok\ta\n")
    test = _write(tmp_path, "test.tsv", _rows(10))
    assert _error(DataError, train, test) == (
        f"{train}: 3 example(s) are too few to cut a validation split (fractions 0.9, 0.1); "
        "give at least 5, or a data.validation file")


# Rows and columns: nothing dropped or truncated silently.

def test_bom_is_not_part_of_the_first_column_name(tmp_path):
    p = _write(tmp_path, "t.csv", "\ufefftext,label\n" + "".join(
        f"row {i},{'ab'[i % 2]}\n" for i in range(20)))
    ds = load_text_dataset(p, header=True, text_column="text", label_column="label")
    assert sorted(sum(ds.texts.values(), [])) == sorted(f"row {i}" for i in range(20))
    p = _write(tmp_path, "t.tsv", "\ufeff" + _rows(20))
    texts, _ = read_examples(p)
    assert texts[0] == "text number 0"


HOSTILE = [
    # name, file name, content, kwargs, expected start of the message (after PATH)
    ("extra column", "t.tsv", _rows(20) + "x\ta\tsurprise\n", {},
     "PATH: line 21: expected 2 columns (as on line 1), found 3"),
    ("short row", "t.tsv", _rows(20) + "lonely text\n", {},
     "PATH: line 21: expected 2 columns (as on line 1), found 1"),
    ("extra column after a header", "t.csv", "text,label\n" + "a,b,c\n", dict(header=True),
     "PATH: line 2: expected 2 columns (in the header), found 3"),
    ("all-empty text column", "t.tsv", "\ta\n \tb\n" * 10, {},
     "PATH: the text column (0) is empty on every line"),
    ("empty label", "t.tsv", _rows(20) + "text\t \n", {}, "PATH: line 21: empty label"),
    ("empty file", "t.tsv", "", {}, "PATH: the file is empty"),
    ("blank lines only", "t.tsv", "\n \n\n", {}, "PATH: the file is empty"),
    ("header only", "t.csv", "text,label\r\n", dict(header=True, text_column="text",
                                                    label_column="label"),
     "PATH: no examples found (only a header row)"),
    ("binary", "t.tsv", bytes(range(256)) * 4, {}, "PATH: not UTF-8 text (invalid start byte)"),
    ("latin-1", "t.tsv", "caf\xe9\ta\n".encode("latin-1"), {},
     "PATH: not UTF-8 text (invalid continuation byte)"),
    ("NUL byte", "t.tsv", "a\x00b\ta\n" + _rows(20), {}, "PATH: line 1: holds a NUL byte"),
    ("missing column name", "t.csv", "text,label\nx,a\n",
     dict(header=True, text_column="txt", label_column="label"),
     "data.text_column: column 'txt' does not exist in PATH (columns: 'text', 'label')"),
    ("duplicate column name", "t.csv", "text,text,label\nx,y,a\n",
     dict(header=True, text_column="text", label_column="label"),
     "data.text_column: column 'text' appears 2 times in the header of PATH"),
    ("column index past the end", "t.tsv", _rows(20), dict(label_column=4),
     "data.label_column: column 4 does not exist in PATH (it has 2 columns)"),
    ("negative column index", "t.tsv", _rows(20), dict(text_column=-1),
     "data.text_column: must be a column index (>= 0) or name, got -1"),
    ("text and label one column", "t.tsv", _rows(20), dict(text_column=1),
     "PATH: data.text_column and data.label_column are the same column (1)"),
    ("quoted TSV field with a tab", "t.tsv", _rows(5) + '"a\tb"\ta\n', {},
     "PATH: line 6: expected 2 columns (as on line 1), found 3 (TSV fields are not quoted"),
    ("unclosed CSV quote", "t.csv", "ok,a\n" + '"never closed,b\n' + "x,a\n" * 5, {},
     "PATH: line 2: cannot be parsed as csv (unexpected end of data)"),
    ("stray CSV quote", "t.csv", 'ok,a\n"a"b,b\n', {},
     "PATH: line 2: cannot be parsed as csv"),
    ("JSON array line", "t.jsonl", '[1, 2]\n', dict(text_column="text", label_column="label"),
     "PATH: line 1: expected a JSON object, found an array"),
    ("JSON string line", "t.jsonl", '{"text": "a", "label": 0}\n"x"\n',
     dict(text_column="text", label_column="label"),
     "PATH: line 2: expected a JSON object, found a string"),
    ("raw carriage return in a JSON string", "t.jsonl",
     '{"text": "a\rb", "label": 0}\n{"text": "c", "label": 1}\n',
     dict(text_column="text", label_column="label"),
     "PATH: line 1, column 12: a raw control character '\\r' inside a JSON string; "
     "JSON writes it as an escape such as \\n, \\r or \\t"),
    ("JSONL lines ended by carriage returns", "t.jsonl",
     '{"text": "a", "label": 0}\r{"text": "b", "label": 1}\r',
     dict(text_column="text", label_column="label"),
     "PATH: line 1 holds several records separated by carriage returns; JSONL ends "
     "each line with a line feed (\\n or \\r\\n)"),
    ("raw tab in a JSON string", "t.jsonl", '{"text": "a\tb", "label": 0}\n',
     dict(text_column="text", label_column="label"),
     "PATH: line 1, column 12: a raw control character '\\t' inside a JSON string"),
    ("pretty-printed JSON", "t.json", '[\n {"text": "a", "label": 0}\n]\n',
     dict(text_column="text", label_column="label"),
     "PATH: line 1 is not valid JSON"),
    ("JSON null label", "t.jsonl", '{"text": "a", "label": null}\n',
     dict(text_column="text", label_column="label"),
     "PATH: line 1: label 'label' must be a string or a whole number, found null"),
    ("JSON true label", "t.jsonl", '{"text": "a", "label": true}\n',
     dict(text_column="text", label_column="label"),
     "PATH: line 1: label 'label' must be a string or a whole number, found true/false"),
    ("JSON NaN label", "t.jsonl", '{"text": "a", "label": NaN}\n',
     dict(text_column="text", label_column="label"),
     "PATH: line 1: label 'label' must be a string or a whole number, found not a finite"),
    ("JSON list text", "t.jsonl", '{"text": ["a"], "label": 0}\n',
     dict(text_column="text", label_column="label"),
     "PATH: line 1: text 'text' must be a string, found an array"),
    ("JSON missing key", "t.jsonl", '{"text": "a", "label": 0}\n{"text": "b"}\n',
     dict(text_column="text", label_column="label"),
     "data.label_column: key 'label' does not exist in PATH (line 2)"),
    ("JSON deep nesting", "t.jsonl", "[" * 100000 + "]" * 100000 + "\n",
     dict(text_column="text", label_column="label"), "PATH: line 1"),
    ("JSON key given twice", "t.jsonl", '{"text": "a", "label": "neg", "label": "pos"}\n',
     dict(text_column="text", label_column="label"),
     "PATH: line 1: key 'label' is given twice; give each key once"),
    ("JSON integer of 5000 digits", "t.jsonl",
     '{"text": "a", "label": 0, "id": ' + "9" * 5000 + "}\n",
     dict(text_column="text", label_column="label"), "PATH: line 1: Exceeds the limit"),
    ("JSON lone surrogate", "t.jsonl", '{"text": "a\\ud800b", "label": 0}\n',
     dict(text_column="text", label_column="label"),
     "PATH: line 1: text 'text' holds a lone surrogate escape"),
]


@pytest.mark.parametrize("name, filename, content, kwargs, expected", HOSTILE,
                         ids=[h[0] for h in HOSTILE])
def test_hostile_files_are_one_line_data_errors(tmp_path, name, filename, content, kwargs,
                                               expected):
    p = _write(tmp_path, filename, content)
    message = _error(DataError, p, **kwargs)
    assert message.startswith(expected.replace("PATH", p)), message
    assert p in message or name == "negative column index"  # an argument, not the file


def test_missing_file_and_folder(tmp_path):
    missing = str(tmp_path / "nope.tsv")
    assert _error(MissingFileError, missing) == f"{missing}: not found (a data file)"
    assert _error(DataError, str(tmp_path)) == f"{tmp_path}: is a folder, not a data file"
    os.mkfifo(tmp_path / "pipe.tsv")
    assert _error(DataError, str(tmp_path / "pipe.tsv")).startswith(
        f"{tmp_path / 'pipe.tsv'}: not a regular file (a FIFO, device or socket)")


@pytest.mark.parametrize("kwargs, expected", [
    (dict(split=(0.5, 0.5)), "split: expected three positive fractions summing to 1"),
    (dict(split=(0.8, 0.3, -0.1)), "split: expected three positive fractions"),
    (dict(max_examples=0), "max_examples: expected a positive integer or None, got 0"),
    (dict(labels=["a", "b", "a"]), "data.labels: class 'a' is listed twice"),
])
def test_bad_arguments_are_one_line(tmp_path, kwargs, expected):
    p = _write(tmp_path, "t.tsv", _rows(20))
    assert _error(ValueError, p, **kwargs).startswith(expected)


# What must still be read as before.

def test_crlf_quoted_csv_and_a_huge_line_read_intact(tmp_path):
    lf = _write(tmp_path, "lf.tsv", _rows(20))
    crlf = _write(tmp_path, "crlf.tsv", _rows(20).replace("\n", "\r\n"))
    assert read_examples(crlf) == read_examples(lf)
    huge = "word " * 60000
    p = _write(tmp_path, "q.csv", f'"a, ""quoted""\nline",pos\r\n{huge},neg\nok,pos\n')
    texts, labels = read_examples(p)
    assert texts == ['a, "quoted"\nline', huge, "ok"] and labels == ["pos", "neg", "pos"]
    bom = _write(tmp_path, "b.jsonl", "\ufeff" + json.dumps({"t": "x", "y": 3}) + "\n")
    assert read_examples(bom, text_column="t", label_column="y") == (["x"], ["3"])


def test_surrounding_whitespace_is_not_part_of_a_label(tmp_path):
    p = _write(tmp_path, "t.tsv", "".join(f"r{i}\t{[' a', 'a ', 'b'][i % 3]}\n"
                                          for i in range(30)))
    assert load_text_dataset(p).label_names == ["a", "b"]


# Through the CLI: exit 2, one line, nothing on disk.

CLI_CASES = [
    ("labels 0 1 01", "x\t0\ny\t1\nz\t01\n" * 4, "line 3: label '01' and label '1'"),
    ("one class", "x\t0\n" * 20, "1 class in the training labels ('0')"),
    ("three lines", "x\ta\ny\tb\nz\ta\n", "3 example(s) are too few to cut a validation"),
    ("extra column", _rows(20) + "x\ta\tb\n", "line 21: expected 2 columns"),
    ("binary", bytes(range(256)), "not UTF-8 text"),
    ("empty", "", "the file is empty"),
]


@pytest.mark.parametrize("name, content, expected", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_bad_data_is_one_line_and_leaves_nothing(tmp_path, capsys, name, content, expected):
    train = _write(tmp_path, "train.tsv", content)
    test = _write(tmp_path, "test.tsv", _rows(10, labels=["a", "b"] if "0" not in expected
                                              else ["0", "1"]))
    teacher = _write(tmp_path, "teacher.keras", b"")  # The data stage runs first.
    out = str(tmp_path / "out")
    config = _write(tmp_path, "c.yaml", json.dumps({
        "data": {"train": train, "test": test}, "teacher": {"model": teacher},
        "output": out, "verbose": 0}))
    before = sorted(os.listdir(tmp_path))
    assert main(["distill", config]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"kd-keras distill: error: {train}: ")
    assert expected in err[0]
    assert not os.path.exists(out) and not os.path.exists(out + ".partial")
    assert sorted(os.listdir(tmp_path)) == before


def test_encode_labels_api_refuses_non_labels():
    from kd_keras.data import encode_labels
    from kd_keras.errors import UsageError

    for bad in (None, float("inf"), True, ["a"]):
        with pytest.raises(UsageError, match=r"^labels\[0\]: line 2: a label must be"):
            encode_labels([["a", bad]])
    names, (a,) = encode_labels([[3, 1, 3]])  # JSON-style numbers: numeric order
    assert names == ["1", "3"] and a.tolist() == [1, 0, 1]
    # NumPy arrays are labels too ("a label must be a string or a number, got
    # np.int64(0)"), read as the Python values they hold.
    for array, expected in ((np.array([3, 1, 3]), ["1", "3"]),
                            (np.array(["pos", "neg", "pos"]), ["neg", "pos"])):
        names, (a,) = encode_labels([array])
        assert names == expected and [type(n) for n in names] == [str, str]
        assert a.tolist() == [1, 0, 1]
    with pytest.raises(UsageError, match=r"^labels\[0\]: line 1: a label must be"):
        encode_labels([np.array([True, False])])
