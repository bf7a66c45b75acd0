"""Which process wrote a lock or a staging marker, and whether it is gone.

A run's `OUTPUT.lock` and an export's staging folder record their process.
Another kd_keras process takes a lock over, or removes a staging folder,
only when that process ran on this host and no longer runs; a record from
another host, or one it cannot read, is never taken for gone.

Example:

>>> is_gone(owner())
False
"""

import os
import socket


def owner():
    """This process as a record names it: `{"pid": ..., "host": ...}`."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


def is_gone(record):
    """True when `record` (as `owner` writes it) names another process on
    this host that no longer runs.

    Args:
        record: the JSON object read from a lock or marker (anything).

    Returns:
        True only when that process is known to be gone.

    Example:

    >>> is_gone({"pid": "12", "host": socket.gethostname()})
    False
    """
    if not isinstance(record, dict) or record.get("host") != socket.gethostname():
        return False
    pid = record.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # Another user's process: it runs.
        return False
    return False
