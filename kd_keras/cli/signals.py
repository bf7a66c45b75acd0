"""SIGTERM stops a command as Ctrl-C does.

A scheduler, `docker stop` or `kill` sends SIGTERM. Python's default ends
the process at once: a run's files go unrecorded, an export's staging
folder stays behind. `sigterm_interrupts` raises `kd_keras.errors.Terminated`
(a `KeyboardInterrupt`) instead, so each command's own cleanup for Ctrl-C
runs, and `kd_keras.cli.main` exits with status 143.

An exception raised by a signal handler surfaces wherever Python code
runs, and native code that called it may turn it into another exception
(TensorFlow's training step gives a `SystemError`). `SigtermState.received`
tells such an exception for the consequence of the stop it is.

Example:

>>> import os, signal
>>> from kd_keras.errors import Terminated
>>> try:
...     with sigterm_interrupts():
...         os.kill(os.getpid(), signal.SIGTERM)
... except Terminated:
...     print("stopped")
stopped
"""

import contextlib
import signal
import threading

from kd_keras.errors import Terminated


class SigtermState:
    """Whether a SIGTERM arrived within a `sigterm_interrupts` block.

    Attributes:
        received: True once one arrived.
    """

    received = False


@contextlib.contextmanager
def sigterm_interrupts():
    """Within the block, SIGTERM raises `Terminated` in the main thread
    (where Python runs signal handlers); elsewhere the block runs as is. A
    second SIGTERM (a scheduler that signals again) is ignored, so that it
    cannot cut the first one's cleanup short. The previous handler is back
    after the block.

    Returns:
        A context manager giving a `SigtermState`.
    """
    state = SigtermState()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def terminate(signum, frame):  # noqa: ARG001 - the signal handler's signature
        state.received = True
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield state
    finally:
        signal.signal(signal.SIGTERM, previous)


__all__ = ["SigtermState", "sigterm_interrupts"]
