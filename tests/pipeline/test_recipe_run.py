"""A run that leaves keys to the default recipe: it makes what the recipe
chose, prints the choices, and records them in `results.json`."""

import json
import os

from pipeline import tiny_run


def test_a_run_prints_and_records_what_the_default_recipe_chose(tmp_path, capsys):
    from kd_keras.cli import main

    base = tiny_run.make_world(tmp_path)
    # No copies, word replacement or feature terms in the config: the recipe's.
    config = tiny_run.write_config(tmp_path / "config.yaml", base, **{"distill.augment": None})
    capsys.readouterr()
    assert main(["distill", config]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines()
               if line.startswith("default recipe:")]
    assert [line.split(" = ")[0] for line in printed] == [
        "default recipe: distill.features", "default recipe: distill.augment.copies",
        "default recipe: distill.augment.replace_prob"]
    with open(os.path.join(base["output"], "results.json")) as f:
        details = json.load(f)["details"]
    texts = details["labeled_train_examples"]  # 48 sentences less the validation split's
    assert 30 < texts < 48
    # The rows it trains on, not the rule's target (100000 rows for 40 texts).
    assert printed[1].startswith(f"default recipe: distill.augment.copies = 10 ({texts} "
                                 f"training texts, {texts * 11} rows with the copies;")
    chosen = {c["key"]: c["value"] for c in details["recipe"]}
    # A ready teacher.model: logits only, and no embeddings to replace words from.
    assert chosen == {"distill.features": [], "distill.augment.copies": 10,
                      "distill.augment.replace_prob": 0.0}
    # The labelled sentences and their unlabelled copies.
    assert details["splits"]["train"] == texts * 11
    with open(os.path.join(base["output"], "config.json")) as f:
        assert json.load(f)["distill"]["augment"]["copies"] == 10  # the complete config


def test_a_ready_teachers_length_names_the_key_that_sets_the_students(tmp_path, capsys):
    base = tiny_run.make_world(tmp_path)  # The teacher reads 8 ids.
    # Left to the recipe, the student reads teacher.sequence_length ids.
    config = tiny_run.write_config(tmp_path / "recipe.yaml", base,
                                   **{"student.sequence_length": None,
                                      "teacher.sequence_length": 12})
    status, err = tiny_run.run_cli(capsys, "distill", config)
    assert status == 2 and err[-1].endswith(
        "teacher.sequence_length: the teacher " + base["teacher"]["model"] + " reads 8 token "
        "ids but the student's sequence length is 12; set teacher.sequence_length: 8"), err
    config = tiny_run.write_config(tmp_path / "set.yaml", base,
                                   **{"student.sequence_length": 12})
    status, err = tiny_run.run_cli(capsys, "distill", config)
    assert status == 2 and err[-1].endswith("set student.sequence_length: 8"), err
