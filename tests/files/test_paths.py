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
