"""`one_line`: the first line of an error's message, and the only place that
takes it (a module that slices a message itself would drift from it)."""

import pathlib
import re

import pytest

import kd_keras
from kd_keras.errors import DataError
from kd_keras.errors import one_line


@pytest.mark.parametrize(
    "error, expected",
    [
        (OSError("x.tsv: no examples\n(details)"), "x.tsv: no examples"),
        # kd_keras's own messages are one line: a break is a value's, shown escaped.
        (DataError("x\ny.tsv: no examples"), "x\\ny.tsv: no examples"),
        (DataError("x\u2028y: no"), "x\\u2028y: no"),
        (ValueError("\n  padded first line  \nsecond"), "padded first line"),
        (KeyError("labels"), "labels"),  # Not "'labels'", as str() gives.
        (EOFError(), "EOFError"),  # No message: its type, not "EOFError()".
        (OSError("   \n "), "OSError"),
    ],
)
def test_one_line(error, expected):
    assert one_line(error) == expected


# str(e).splitlines()[0], str(e).strip().split("\n")[0], str(e).partition("\n")...
_FIRST_LINE_BY_HAND = re.compile(
    r"str\(\w+\)(\.strip\(\))?\.(splitlines\(\)|split\(['\"]\\n|partition\(['\"]\\n)")


def test_no_module_takes_an_error_s_first_line_by_hand():
    package = pathlib.Path(kd_keras.__file__).parent
    found = [
        f"{path.relative_to(package)}:{number}: {line.strip()}"
        for path in sorted(package.rglob("*.py")) if path.name != "errors.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if _FIRST_LINE_BY_HAND.search(line)
    ]
    assert found == [], "use kd_keras.errors.one_line:\n" + "\n".join(found)
