"""The project's own error types: problems a user can fix.

Every error kd_keras raises for bad input derives from `KdKerasError`. The
`kd-keras` command prints such an error as one line and exits with status 2;
any other exception is a bug, keeps its traceback and exits with status 1.

Messages follow one style: they start with what is wrong (a config key, a
file, an argument or a value), then a colon and what was expected or found:

- `distill.epochs: must be a positive integer, got -1`
- `data/train.tsv: line 3: expected 2 columns, found 3`
- `--formats: unknown format 'tflit' (known: saved_model, tflite, onnx)`

The types also derive from the built-in exception that fits (`ValueError`,
`FileNotFoundError`, `ImportError`), so `except ValueError` keeps working.

Example:

>>> try:
...     raise ConfigError("distill.alpha: must be a number in [0, 1], got 2")
... except ValueError as e:
...     print(one_line(e))
distill.alpha: must be a number in [0, 1], got 2
"""


class KdKerasError(Exception):
    """Base class of the errors a user can fix; the message is one line."""


class ConfigError(KdKerasError, ValueError):
    """A bad config key or value; the message names the key."""


class DataError(KdKerasError, ValueError):
    """Bad input data; the message names the file (and line or column)."""


class UsageError(KdKerasError, ValueError):
    """A bad command-line argument or API argument; the message names it."""


class MissingFileError(KdKerasError, FileNotFoundError):
    """A file or folder the user named does not exist; the message names it."""


class MissingDependencyError(KdKerasError, ImportError):
    """An optional dependency is not installed; the message names the
    `pip install` command that adds it."""


class VerificationError(KdKerasError, ValueError):
    """An exported artifact does not match the Keras model it came from."""


class KdKerasWarning(UserWarning):
    """Something that works now but a user will likely want to change (an
    exported input whose name Keras generated); the `kd-keras` command
    prints it as one line."""


class Terminated(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM: a scheduler, `docker stop`,
    `kill`). Raised where the program runs, as Ctrl-C is, so that an
    unfinished run records its files and says how to resume it."""


def one_line(error):
    """An error's message as one line: the first line of another library's
    error, the whole of kd_keras's own (its type's name when it has none).

    Args:
        error: an exception.

    Returns:
        A string without newlines.

    Example:

    >>> one_line(OSError("x.tsv: no examples\\n(details)"))
    'x.tsv: no examples'
    >>> one_line(EOFError())
    'EOFError'

    kd_keras's own messages are one line, so a line break in one comes from
    a value it names (a file's name, a label), and is shown escaped rather
    than cut off:

    >>> print(one_line(DataError("odd\\nname.tsv: no examples")))
    odd\\nname.tsv: no examples
    """
    text = str(error).strip()
    if text.startswith("'") and text.endswith("'") and isinstance(error, KeyError):
        text = text[1:-1]
    if not text:
        return type(error).__name__
    if isinstance(error, KdKerasError):
        return "".join(_escaped(c) for c in text)
    return text.splitlines()[0].rstrip()


def _escaped(char):
    """`char`, or its escape when it would break a line (`str.splitlines`)."""
    return char.encode("unicode_escape").decode("ascii") if len(
        f"{char}x".splitlines()) > 1 else char


def first_of(items, show=str):
    """The first of `items` and how many more, for a one-line message.

    Args:
        items: a non-empty sequence (file names, weights, ...).
        show: how an item is written (`str`, `repr`).

    Returns:
        `"FIRST"` or `"FIRST and N more"`.

    Example:

    >>> first_of(["notes.txt", "a.npy", "b.npy"])
    'notes.txt and 2 more'
    >>> first_of(["dense/kernel"], repr)
    "'dense/kernel'"
    """
    items = list(items)
    more = f" and {len(items) - 1} more" if len(items) > 1 else ""
    return f"{show(items[0])}{more}"


def require(module, extra, feature):
    """Imports an optional dependency, or stops with the `pip install` to run.

    Args:
        module: the module to import, e.g. `"onnxruntime"`.
        extra: the kd_keras extra that installs it, e.g. `"export"`.
        feature: what needs it, for the message, e.g. `"ONNX export"`.

    Returns:
        The imported module.

    Raises:
        MissingDependencyError: naming `pip install "kd_keras[EXTRA]"`.

    Example:

    >>> require("json", "export", "JSON").__name__
    'json'
    >>> require("no_such_module_xyz", "export", "ONNX export")
    Traceback (most recent call last):
    ...
    kd_keras.errors.MissingDependencyError: ONNX export needs no_such_module_xyz: pip install "kd_keras[export]"
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.split(".")[0]
        if e.name is not None and e.name.split(".")[0] != top:
            raise  # The module is there but broken: a bug, keep the traceback.
        raise MissingDependencyError(
            f'{feature} needs {top}: pip install "kd_keras[{extra}]"') from None


__all__ = [
    "ConfigError",
    "DataError",
    "KdKerasError",
    "KdKerasWarning",
    "MissingDependencyError",
    "MissingFileError",
    "UsageError",
    "VerificationError",
    "first_of",
    "one_line",
    "require",
]
