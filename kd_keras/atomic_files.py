"""`atomic_path`: write a file through a temporary file beside it, then rename.

A reader, or a run resumed after a kill, sees the old file or the new one,
never half of one. The temporary file is `.NAME.tmp-XXXXXXXX` in the same
folder (so the rename stays on one filesystem), created with the usual
permissions (`0o666` less the umask, as `open` gives), and removed if the
write fails. The cache (`kd_keras.cache.store`), the export folders
(`kd_keras.export.output_dir`) and the warmup file keep their own variants:
they sync to disk or recognise their leftovers by name.

Example:

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "notes.txt")
>>> with atomic_path(path) as tmp:
...     with open(tmp, "w") as f:
...         _ = f.write("done")
>>> open(path).read(), os.listdir(os.path.dirname(path))
('done', ['notes.txt'])
"""

import contextlib
import os
import secrets

@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yields a new empty temporary path beside `path`, renamed onto `path`
    when the block ends; removed instead if the block raises.

    Args:
        path: the file to write (its folder must exist).
        suffix: the temporary name's ending, for writers that choose the
            format from it (`".png"` for matplotlib, `".weights.h5"` for
            Keras).

    Returns:
        A context manager whose value is the temporary path.

    Example:

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> try:
    ...     with atomic_path(path) as tmp:
    ...         raise ValueError("the writer failed")
    ... except ValueError:
    ...     pass
    >>> os.listdir(os.path.dirname(path))
    []
    """
    folder, name = os.path.split(os.path.abspath(path))
    while True:
        tmp = os.path.join(folder, f".{name}.tmp-{secrets.token_hex(4)}{suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
