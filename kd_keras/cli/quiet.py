"""Hiding TensorFlow's native log lines from the command line's output.

TensorFlow, XLA and LiteRT write C++ log lines to file descriptor 2 (e.g.
`I0000 00:00:... port.cc:153] oneDNN custom operations are on`), some before
`TF_CPP_MIN_LOG_LEVEL` is read. `native_logs_hidden()` sets that variable,
quietens the `absl` and `tensorflow` Python loggers, and routes descriptor 2
through a pipe that drops such lines and passes everything else on
(progress bars, warnings, error messages) unchanged.

Example:

>>> line = b"I0000 00:00:1795951460.560550   23532 port.cc:153] oneDNN custom"
>>> NATIVE_LOG_LINE.match(line) is not None
True
>>> NATIVE_LOG_LINE.match(b"export:  50%|#####") is None
True
"""

import contextlib
import logging
import os
import re
import sys
import threading

NATIVE_LOG_LINE = re.compile(
    rb"(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^\s\]]+:\d+\]"
    rb"|WARNING: All log messages before absl::InitializeLog\(\)"
    rb"|INFO: Created TensorFlow Lite (?:XNNPACK )?delegate"
    rb"|INFO: Initialized TensorFlow Lite runtime"
    rb"|fully_quantize: \d+, inference_type)"
)
# A partial line starting with one of these may become a native log line:
# it is held back until its end.
_MAYBE_LOG = tuple(b"IWEFf")


def _pump(read_fd, out_fd):
    pending = b""
    while True:
        chunk = os.read(read_fd, 1 << 16)
        if not chunk:
            break
        pieces = re.split(rb"(?<=[\r\n])", pending + chunk)
        pending = pieces.pop()
        out = b"".join(p for p in pieces if not NATIVE_LOG_LINE.match(p))
        if pending and pending[0] not in _MAYBE_LOG:
            out, pending = out + pending, b""
        if out:
            os.write(out_fd, out)
    if pending and not NATIVE_LOG_LINE.match(pending):
        os.write(out_fd, pending)
    os.close(read_fd)


@contextlib.contextmanager
def native_logs_hidden(enabled=True):
    """Within the block, TensorFlow's native log lines are dropped.

    Args:
        enabled: False leaves everything as it is (`--verbose`).
    """
    if not enabled:
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # Errors too: e.g. cuInit's.
    for name in ("absl", "tensorflow"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # No usable descriptor 2: nothing to filter.
        yield
        return
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    pump = threading.Thread(target=_pump, args=(read_fd, saved), daemon=True)
    pump.start()
    try:
        yield
    finally:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved, 2)  # Closes the pipe's last write end: the pump ends.
        pump.join(timeout=10)
        os.close(saved)
