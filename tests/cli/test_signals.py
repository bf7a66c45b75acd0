"""SIGTERM stops a command as Ctrl-C does (`kd_keras.cli.signals`)."""

import argparse
import os
import signal

import pytest

import kd_keras.cli as cli


def _command(monkeypatch, func):
    class Parser:
        def parse_args(self, argv):
            return argparse.Namespace(func=func, command="export", verbose=True)

    monkeypatch.setattr(cli, "build_parser", Parser)


def test_the_signals_exception_turned_into_another_inside_native_code_is_a_stop(
        monkeypatch, capsys):
    def command(args):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except KeyboardInterrupt:
            # As TensorFlow's step does with the handler's exception.
            raise SystemError("Objects/listobject.c:338: bad argument to internal function")

    _command(monkeypatch, command)
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main([]) == 143
    assert capsys.readouterr().err == "kd-keras export: interrupted\n"
    assert signal.getsignal(signal.SIGTERM) == before  # Restored.


def test_an_error_without_a_sigterm_keeps_its_traceback(monkeypatch):
    def command(args):
        raise SystemError("a bug")

    _command(monkeypatch, command)
    with pytest.raises(SystemError, match="a bug"):
        cli.main([])


def test_a_sigterm_turned_into_a_plain_keyboard_interrupt_exits_143(monkeypatch, capsys):
    # Ray's training turns the handler's exception into its own
    # KeyboardInterrupt: the exit status said Ctrl-C (130).
    def command(args):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except KeyboardInterrupt:
            raise KeyboardInterrupt() from None

    _command(monkeypatch, command)
    assert cli.main([]) == 143
    assert capsys.readouterr().err == "kd-keras export: interrupted\n"


def test_ray_init_leaves_the_sigterm_handler_as_it_was():
    # Under Ray's own handler, SIGTERM aborted the run (exit 134).
    from kd_keras.distribute.ray_cluster import _keeping_sigterm

    def mine(signum, frame):
        pass

    before = signal.signal(signal.SIGTERM, mine)
    try:
        with _keeping_sigterm():
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # As ray.init does.
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)
