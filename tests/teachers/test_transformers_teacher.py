import numpy as np

from kd_keras.teachers import load_teacher
from tests.teachers.conftest import VOCAB
from tests.teachers.conftest import random_tokens


def test_transformers_teacher_matches_the_keras_conversion(
    tiny_bert_classifier_dir, rng
):
    torch_teacher = load_teacher(tiny_bert_classifier_dir, runtime="torch")
    keras_teacher = load_teacher(tiny_bert_classifier_dir)
    tokens = random_tokens(rng)

    assert not torch_teacher.in_graph and torch_teacher.model is None
    # Two runtimes (PyTorch and TensorFlow) on one checkpoint.
    np.testing.assert_allclose(
        torch_teacher.predict_on_batch(tokens),
        keras_teacher.predict_on_batch(tokens),
        atol=1e-4,
    )
    assert torch_teacher.fingerprint() == load_teacher(
        tiny_bert_classifier_dir, runtime="torch"
    ).fingerprint()


def test_raw_text_is_tokenized_with_the_checkpoint_vocab(tiny_bert_classifier_dir):
    teacher = load_teacher(
        tiny_bert_classifier_dir, runtime="torch", sequence_length=8
    )
    ids = [VOCAB.index(t) for t in ["[CLS]", "good", "film", "!", "[SEP]"]]
    tokens = {
        "token_ids": np.array([ids + [0, 0, 0]]),
        "padding_mask": np.array([[1] * 5 + [0] * 3]),
        "segment_ids": np.zeros((1, 8), "int32"),
    }
    np.testing.assert_allclose(
        teacher.predict_on_batch([b"Good FILM!"]),
        teacher.predict_on_batch(tokens),
        atol=1e-6,
    )


def test_a_checkpoint_missing_weights_is_refused(tiny_bert_dir, tiny_bert_classifier_dir):
    """Weights the checkpoint lacks would start random: a bare encoder read
    as a classifier, or a config naming another architecture."""
    import json
    import os

    import pytest

    from kd_keras.errors import UsageError

    with pytest.raises(UsageError, match=r"tiny_bert: the checkpoint has no trained weights "
                                         r"for classifier\.bias and 1 more of "
                                         r"BertForSequenceClassification"):
        load_teacher(tiny_bert_dir, runtime="torch")
    config_path = os.path.join(tiny_bert_classifier_dir, "config.json")
    with open(config_path) as f:
        config = json.load(f)
    config.update(model_type="roberta", architectures=["RobertaForSequenceClassification"])
    with open(config_path, "w") as f:
        json.dump(config, f)
    with pytest.raises(UsageError, match=r"no trained weights for .* of "
                                         r"RobertaForSequenceClassification"):
        load_teacher(tiny_bert_classifier_dir)  # Not BERT: read by transformers.


def test_the_tokenizer_is_local_and_part_of_the_fingerprint(tiny_bert_classifier_dir,
                                                             monkeypatch):
    import os

    import pytest
    import transformers

    from kd_keras.errors import UsageError

    calls = []
    original = transformers.AutoTokenizer.from_pretrained
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained",
                        lambda *a, **k: calls.append(k) or original(*a, **k))
    teacher = load_teacher(tiny_bert_classifier_dir, runtime="torch", sequence_length=8)
    before = teacher.fingerprint()
    teacher.predict_on_batch(["good film"])
    assert calls == [{"local_files_only": True}]  # Never the Hub.

    vocab = os.path.join(tiny_bert_classifier_dir, "vocab.txt")
    words = open(vocab).read().split("\n")
    with open(vocab, "w") as f:  # Two words swapped: other ids for raw text.
        f.write("\n".join(words[:5] + [words[6], words[5]] + words[7:]))
    assert load_teacher(tiny_bert_classifier_dir, runtime="torch",
                        sequence_length=8).fingerprint() != before
    for name in ("vocab.txt", "tokenizer_config.json"):
        os.remove(os.path.join(tiny_bert_classifier_dir, name))
    bare = load_teacher(tiny_bert_classifier_dir, runtime="torch", sequence_length=8)
    with pytest.raises(UsageError, match=r"tiny_bert_cls: has no tokenizer \(tokenizer.json, "
                                         r"vocab.txt, vocab.json, \.\.\.\) for raw text"):
        bare.predict_on_batch(["good film"])


def test_bad_options_and_damaged_checkpoints_are_one_line(tiny_bert_classifier_dir):
    import os

    import pytest

    from kd_keras.errors import UsageError

    path = tiny_bert_classifier_dir
    cases = [
        ({"auto_class": "BertConfig"}, r"^auto_class: must be a transformers AutoModel class"),
        ({"sequence_length": 65}, r"^sequence_length: 65 is longer than the 64 positions"),
    ]
    for options, message in cases:
        with pytest.raises(UsageError, match=message):
            load_teacher(path, runtime="torch", **options)
    teacher = load_teacher(path, runtime="torch", output="hidden_states", sequence_length=8)
    with pytest.raises(UsageError, match=r"^output: .* gives no tensor 'hidden_states'; it "
                                         r"returns \['logits'\]"):
        teacher.predict_on_batch(["good film"])
    weights = os.path.join(path, "model.safetensors")
    data = open(weights, "rb").read()
    with open(weights, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(UsageError, match=r"tiny_bert_cls: cannot load a transformers model \("):
        load_teacher(path, runtime="torch")
