"""The shape of a command's answer to bad input, shared by the CLI tests."""


def assert_one_line_error(command, code, err, *parts):
    """Asserts exit status 2 and one line on standard error,
    `kd-keras COMMAND: error: ...`, holding each of `parts`.

    Args:
        command: the subcommand (`"verify"`, `"export"`, `"predict"`).
        code: the status `kd_keras.cli.main` returned.
        err: what it wrote on standard error.
        *parts: texts the line must hold.
    """
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith(f"kd-keras {command}: error: "), err
    for part in parts:
        assert part in err, err
