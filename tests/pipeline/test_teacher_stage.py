"""`teacher_stage.compute_features`: the named teacher outputs, every row."""

import numpy as np
import keras

from kd_keras.config import parse_config
from kd_keras.data import SPLITS
from kd_keras.data import TextDataset
from kd_keras.pipeline.data_stage import PreparedData
from kd_keras.pipeline.teacher_stage import TeacherState
from kd_keras.pipeline.teacher_stage import compute_features


def test_compute_features_equals_numpy_on_every_row(tmp_path):
    """Pooled `[n, d]` and per-token `[n, seq, d]` outputs of an ids teacher
    equal the NumPy float64 lookup, across batch boundaries (150 rows is
    two full batches of 64 and a tail of 22)."""
    vocab, seq, dim = 50, 7, 5
    ids_in = keras.Input((seq,), dtype="int32")
    tokens = keras.layers.Embedding(vocab, dim, name="tokens")(ids_in)
    pooled = keras.layers.GlobalAveragePooling1D(name="pooled")(tokens)
    teacher = keras.Model(ids_in, keras.layers.Dense(2)(pooled))
    (tmp_path / "train.tsv").write_text("a good film\t1\n")
    teacher.save(str(tmp_path / "t.keras"))
    cfg = parse_config({
        "data": {"train": "train.tsv"}, "teacher": {"model": "t.keras"},
        "distill": {"features": [
            {"teacher_layer": "pooled", "student_layer": "features"},
            {"teacher_layer": "tokens", "student_layer": "embedding", "name": "tok"}]}},
        base_dir=str(tmp_path))
    rng = np.random.default_rng(0)
    sizes = {"train": 150, "validation": 64, "test": 3}
    ids = {s: rng.integers(0, vocab, (n, seq)).astype("int32") for s, n in sizes.items()}
    dataset = TextDataset(texts={s: ["x"] * n for s, n in sizes.items()},
                          labels={s: np.zeros(n, "int32") for s, n in sizes.items()},
                          label_names=["neg", "pos"])
    data = PreparedData(dataset=dataset, ids=ids, vocab_size=vocab, vocabulary="vocab.txt")
    state = TeacherState(teacher=None, model=teacher, params=None, route="test",
                         reads_ids=True)

    features = compute_features(cfg, data, state)

    table = np.asarray(teacher.get_layer("tokens").get_weights()[0], np.float64)
    for split in SPLITS:
        looked_up = table[ids[split]]
        assert set(features[split]) == {"pooled", "tokens"}
        assert features[split]["tokens"].dtype == np.float32
        np.testing.assert_allclose(features[split]["tokens"], looked_up, atol=1e-6)
        np.testing.assert_allclose(features[split]["pooled"], looked_up.mean(1), atol=1e-6)
