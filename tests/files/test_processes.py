"""`is_gone`: only a process of this host that no longer runs is gone."""

import socket
import subprocess
import sys

import pytest

from kd_keras.files.processes import is_gone
from kd_keras.files.processes import owner


def test_a_finished_process_of_this_host_is_gone_and_a_running_one_is_not():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        record = {"pid": child.pid, "host": socket.gethostname()}
        assert not is_gone(record)
    finally:
        child.kill()
        child.wait()
    assert is_gone(record)
    assert not is_gone({**record, "host": "another-host"})  # Cannot be told from here.
    assert not is_gone(owner())


@pytest.mark.parametrize("record", [None, [], {}, {"pid": "12"}, {"pid": True},
                                    {"pid": 0}, {"pid": -1}, {"host": "x"}])
def test_a_record_it_cannot_read_is_never_taken_for_gone(record):
    if isinstance(record, dict):
        record = {"host": socket.gethostname(), **record}
    assert not is_gone(record)
