import os

from kd_keras.config import parse_config
from kd_keras.data import WordPieceEncoder
from kd_keras.data.tokenizer import load_vocabulary
from kd_keras.data.tokenizer import pruned_vocabulary
from kd_keras.pipeline import data_stage
from kd_keras.pipeline import export_stage
from kd_keras.pipeline.workdir import RunDir
from pipeline import tiny_run


def test_a_pruned_tokenizer_gives_the_student_its_ids_and_the_run_its_vocab_txt(tmp_path):
    """`student.tokenizer_min_count`: the ids come from the pruned
    vocabulary, written under the cache folder, and the run keeps a copy as
    `vocab.txt` (here without an export)."""
    base = tiny_run.make_world(tmp_path)
    cache = tmp_path / "cache"
    cfg = parse_config({
        **base, "teacher": {"backbone": "minilm"},
        "student": {**base["student"], "tokenizer_min_count": 12},
        "distill": {**base["distill"], "cache_dir": str(cache)}})
    data = data_stage.prepare_data(cfg)
    expected = pruned_vocabulary(tiny_run.VOCAB, data.dataset.texts["train"], 12)
    assert 5 < len(expected) < len(tiny_run.VOCAB)
    assert data.vocabulary.startswith(str(cache) + os.sep)
    assert load_vocabulary(data.vocabulary) == expected
    assert data.vocab_size == len(expected)
    encoder = WordPieceEncoder(expected, tiny_run.SEQUENCE_LENGTH)
    for split, ids in data.ids.items():
        assert (ids == encoder(data.dataset.texts[split])).all()
        assert ids.max() < len(expected)
    assert data_stage.prepare_data(cfg).vocabulary == data.vocabulary  # named by its content

    run = RunDir(str(tmp_path / "out"), cfg)
    assert export_stage.export_student(cfg, data, None, run) is None
    assert load_vocabulary(run.file("vocab.txt")) == expected
    run.close()
