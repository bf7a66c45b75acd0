"""`kd_keras.files.paths`: output folders TensorFlow would read as a
pattern are refused before any work, by `distill` and `export`."""

import os


def test_output_paths_tensorflow_reads_as_patterns_are_refused_before_any_work(tmp_path,
                                                                               capsys):
    # The export's SavedModel check failed after the whole training.
    from kd_keras.cli import main
    from pipeline import tiny_run

    base = tiny_run.make_world(tmp_path)
    config = tiny_run.write_config(tmp_path / "run.yaml", base)
    for output, message in [(str(tmp_path / "lr[1e-3]"), "holds '['"),
                            (str(tmp_path / "C:\\Users\\me\\x"), "a Windows path?")]:
        status, lines = tiny_run.run_cli(capsys, "distill", config, "--output", output)
        assert status == 2 and len(lines) == 1 and message in lines[0], lines
        assert not os.path.exists(output) and not os.path.exists(output + ".partial")
    status = main(["export", base["teacher"]["model"], str(tmp_path / "out[1]")])
    assert status == 2 and "OUT_DIR" not in capsys.readouterr().out
    assert not os.path.exists(tmp_path / "out[1]")


def test_an_output_name_too_long_for_what_kd_keras_writes_beside_it(tmp_path, capsys):
    # OUTPUT.partial did not fit: a traceback after the data stage.
    from kd_keras.cli import main
    from pipeline import tiny_run

    base = tiny_run.make_world(tmp_path)
    config = tiny_run.write_config(tmp_path / "run.yaml", base)
    name = "o" * 240
    output = str(tmp_path / name)
    status, lines = tiny_run.run_cli(capsys, "distill", config, "--output", output)
    assert (status, lines) == (2, [
        f"kd-keras distill: error: output: {output}: its name is 240 bytes long; kd_keras "
        "writes beside it under names up to 32 bytes longer (its working copy, its lock, "
        "the copy it replaces), so keep it to 223"])
    assert not any(entry.startswith(name) for entry in os.listdir(tmp_path))
    assert main(["export", base["teacher"]["model"], str(tmp_path / ("e" * 240))]) == 2
    assert "its name is 240 bytes long" in capsys.readouterr().err
