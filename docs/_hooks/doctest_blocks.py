"""Griffe extension: show the docstrings' doctests as Python console blocks.

kd_keras's docstrings write their examples as plain doctests (`>>> ...`
lines, then the expected output) so that `python -m doctest` and the tests
run them. Markdown would read `>>>` as nested quotes and `[1.0, 0.5]` in an
output as a link, so each doctest run (from a `>>>` line to the next blank
line) is put in a ```pycon fence before mkdocstrings renders the docstring.
Nothing else changes: the source keeps its doctests as they are.
"""

import griffe

_FENCE = "```"


def fence_doctests(text):
    """Returns `text` with each run of doctest lines inside a pycon fence."""
    out = []
    in_fence = False
    in_doctest = False
    indent = ""
    for line in text.splitlines():
        stripped = line.strip()
        if in_doctest and not stripped:
            out.append(indent + _FENCE)
            in_doctest = False
        if not in_doctest and stripped.startswith(_FENCE):
            in_fence = not in_fence
        elif not in_fence and not in_doctest and stripped.startswith(">>>"):
            indent = line[:len(line) - len(line.lstrip())]
            out.append(indent + _FENCE + "pycon")
            in_doctest = True
        out.append(line)
    if in_doctest:
        out.append(indent + _FENCE)
    return "\n".join(out)


class DoctestBlocks(griffe.Extension):
    """Fences the doctests of every docstring that mkdocstrings loads."""

    def on_instance(self, *, obj, **kwargs):
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
