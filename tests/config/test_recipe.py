"""The default recipe picks what its docs page says, for small, medium and
large synthetic datasets, and never changes a key the config sets."""

import dataclasses
import os
import re

import numpy as np
import pytest

from conftest import REPO_ROOT
from kd_keras.config import parse_config
from kd_keras.config.recipe import DataProfile
from kd_keras.config.recipe import complete_config
from kd_keras.config.recipe import unset_keys
from kd_keras.data import TextDataset
from kd_keras.pipeline import data_stage
from pipeline import tiny_run

DOCS = os.path.join(REPO_ROOT, "docs", "guides", "recipe.md")


def _docs_table(heading):
    """The rows of the first table under `heading` in the recipe's page, as
    integers (`1,000` -> 1000; the first number of each cell)."""
    with open(DOCS, encoding="utf-8") as f:
        text = f.read()
    lines = text[text.index(heading):].splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    block = []
    for line in lines[first:]:
        if not line.startswith("|"):
            break
        block.append(line)
    table = []
    for line in block[2:]:  # After the header and its rule.
        cells = [c.strip() for c in line.strip("|").split("|")]
        table.append([int(re.search(r"[\d,]+", c).group().replace(",", "")) for c in cells])
    return table


def _config(**teacher):
    return parse_config({"data": {"builtin": "rt_polarity"},
                         "teacher": teacher or {"backbone": "minilm"}})


def _chosen(cfg, profile):
    full, choices = complete_config(cfg, profile)
    return full, {c.key: c.value for c in choices}


def test_the_copies_are_those_of_the_docs_table():
    table = _docs_table("### Copies by the size of the training set")
    assert len(table) >= 5
    for texts, copies, rows in table:
        # Labelled or not, every training text counts.
        for labelled in (texts, texts // 10):
            profile = DataProfile(labelled, texts - labelled, 2, covered_length=40)
            full, _ = _chosen(_config(), profile)
            assert full.distill.augment.copies == copies, texts
            assert texts * (copies + 1) == rows


def test_the_sequence_length_is_that_of_the_docs_table():
    table = _docs_table("### The student's sequence length")
    assert len(table) >= 4
    for covered, length in table:
        covered = min(covered, 64)  # The teacher's ids stop at its sequence length.
        full, _ = _chosen(_config(backbone="minilm", sequence_length=64),
                          DataProfile(5000, 0, 2, covered_length=covered))
        assert full.student.sequence_length == length, covered


def _dataset(n, words, seed):
    """`n` training texts of `words[i]` words from the tiny vocabulary."""
    rng = np.random.default_rng(seed)
    vocabulary = tiny_run.VOCAB[5:]
    texts = [" ".join(rng.choice(vocabulary, size=w)) for w in words]
    labels = {"train": rng.integers(0, 3, n).astype("int32"),
              "validation": np.zeros(0, "int32"), "test": np.zeros(0, "int32")}
    return TextDataset({"train": texts, "validation": [], "test": []}, labels,
                       ["a", "b", "c"])


@pytest.mark.parametrize("size,words,copies,length", [
    ("small", (1_000, 5, 20), 10, 32),     # 99% fit in 22 ids: half of 64 does
    ("medium", (20_000, 3, 12), 4, 16),    # 99% fit in 14 ids: 16, never less
    ("large", (60_000, 10, 70), 0, 64),    # 99% longer than 32 ids: the teacher's 64
])
def test_synthetic_datasets_get_the_documented_recipe(tmp_path, size, words, copies, length):
    n, low, high = words
    rng = np.random.default_rng(1)
    counts = rng.integers(low, high + 1, n)
    dataset = _dataset(n, counts, seed=2)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(tiny_run.VOCAB) + "\n")
    cfg = parse_config({"data": {"train": "train.tsv"},
                        "teacher": {"backbone": "minilm", "sequence_length": 64},
                        "student": {"vocabulary": str(vocab)}})
    profile = data_stage.data_profile(cfg, dataset)
    # Each word is one id here, plus [CLS] and [SEP]: NumPy float64 on the counts.
    assert profile.covered_length == int(np.ceil(np.quantile(np.minimum(counts + 2, 64), 0.99)))
    assert (profile.labelled, profile.unlabelled, profile.num_classes) == (n, 0, 3)
    full, chosen = _chosen(cfg, profile)
    assert chosen["distill.augment.copies"] == full.distill.augment.copies == copies
    assert full.student.sequence_length == length
    assert full.student.architecture == "dilated_cnn"
    assert [t.teacher_layer for t in full.distill.features] == ["classifier/pooling"]
    assert full.distill.augment.replace_prob == (0.3 if copies else 0.0)
    assert ("distill.augment.replace_prob" in chosen) == bool(copies)
    assert unset_keys(full) == []


def test_a_ready_teacher_model_gets_logits_only_and_no_word_replacement():
    full, chosen = _chosen(_config(model="teacher.keras"), DataProfile(900, 8100, 4, 30))
    assert full.distill.features == () and chosen["distill.features"] == ()
    assert full.distill.augment.copies == 10
    assert full.distill.augment.replace_prob == 0.0
    # It may read the student's ids, so the student reads its length whole
    # (30 ids would halve a backbone teacher's 64 to 32).
    assert full.student.sequence_length == 64 == full.teacher.sequence_length


def test_keys_the_config_sets_are_kept():
    cfg = parse_config({"data": {"builtin": "rt_polarity"}, "teacher": {"backbone": "minilm"},
                        "student": {"architecture": "text_cnn", "sequence_length": 48},
                        "distill": {"features": [], "augment": {"copies": 2}}})
    full, chosen = _chosen(cfg, DataProfile(8530, 0, 2, 56))
    assert (full.student.architecture, full.student.sequence_length) == ("text_cnn", 48)
    assert (full.distill.features, full.distill.augment.copies) == ((), 2)
    assert list(chosen) == ["distill.augment.replace_prob"]


def test_no_copies_leave_the_word_replacement_out_of_the_recipe():
    cfg = parse_config({"data": {"builtin": "rt_polarity"}, "teacher": {"backbone": "minilm"},
                        "student": {"architecture": "text_cnn", "sequence_length": 48},
                        "distill": {"features": [], "augment": {"copies": 0}}})
    assert cfg.distill.augment.replace_prob is None
    assert unset_keys(cfg) == []
    assert unset_keys(cfg.replace(distill=dataclasses.replace(
        cfg.distill, augment=dataclasses.replace(cfg.distill.augment, copies=None)))) == [
        "distill.augment.copies", "distill.augment.replace_prob"]


@pytest.mark.parametrize("texts", [900, 60_614])
def test_a_completed_config_reads_back_as_itself(texts):
    # With no copies (60,614 texts) the recipe writes replace_prob: 0.0,
    # which the parser then refused as unused: a run's own config.json did
    # not read back.
    from kd_keras.config import to_dict

    full, _ = _chosen(_config(), DataProfile(texts, 0, 2, covered_length=30))
    assert parse_config(to_dict(full)) == full
