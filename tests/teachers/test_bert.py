import json
import os

import numpy as np
import pytest
import torch

from kd_keras.errors import DataError
from kd_keras.teachers import bert
from kd_keras.teachers import loading
from tests.teachers.conftest import random_tokens
from tests.teachers.conftest import save_tiny_bert


def _torch_outputs(path, tokens, auto_class="BertModel"):
    import transformers

    model = getattr(transformers, auto_class).from_pretrained(path).eval()
    with torch.no_grad():
        return model(
            input_ids=torch.as_tensor(tokens["token_ids"], dtype=torch.long),
            attention_mask=torch.as_tensor(tokens["padding_mask"], dtype=torch.long),
            token_type_ids=torch.as_tensor(tokens["segment_ids"], dtype=torch.long),
        )


@pytest.mark.parametrize("hidden_act", ["gelu", "gelu_new"])
def test_fidelity_keras_hub_conversion_matches_transformers(tmp_path, rng, hidden_act):
    path = str(tmp_path / "ckpt")
    save_tiny_bert(path, hidden_act=hidden_act)
    tokens = random_tokens(rng)
    expected = _torch_outputs(path, tokens).last_hidden_state.numpy()

    backbone = bert.load_bert_backbone(path)
    got = np.asarray(backbone(tokens)["sequence_output"])

    mask = tokens["padding_mask"].astype(bool)  # padded positions are unused
    np.testing.assert_allclose(got[mask], expected[mask], atol=1e-4)
    if hidden_act == "gelu":
        # The weights are large enough that KerasHub's tanh GELU alone would
        # miss the tolerance: the test can fail.
        import keras_hub

        plain = keras_hub.models.BertBackbone.from_preset(path)
        plain_out = np.asarray(plain(tokens)["sequence_output"])
        assert np.abs(plain_out[mask] - expected[mask]).max() > 1e-4


def test_hf_classifier_checkpoint_keeps_its_head(tiny_bert_classifier_dir, rng):
    tokens = random_tokens(rng)
    expected = _torch_outputs(
        tiny_bert_classifier_dir, tokens, "BertForSequenceClassification"
    ).logits.numpy()

    teacher = loading.load_teacher(tiny_bert_classifier_dir)

    assert teacher.in_graph
    np.testing.assert_allclose(teacher.predict_on_batch(tokens), expected, atol=1e-4)


def test_bare_encoder_gets_mean_pooled_head(tiny_bert_dir, rng):
    tokens = random_tokens(rng)
    hidden = _torch_outputs(tiny_bert_dir, tokens).last_hidden_state.numpy()
    model = bert.load_bert_teacher(tiny_bert_dir, num_classes=2, pooling="mean")
    kernel, bias = model.get_layer("head").get_weights()

    mask = tokens["padding_mask"][:, :, None]
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    np.testing.assert_allclose(
        np.asarray(model(tokens)), pooled @ kernel + bias, atol=1e-4
    )


def test_bad_checkpoints_are_refused(tiny_bert_dir, tmp_path):
    with pytest.raises(ValueError, match="num_classes"):
        bert.load_bert_teacher(tiny_bert_dir)
    with pytest.raises(FileNotFoundError, match="nope"):
        loading.load_teacher(str(tmp_path / "nope"), num_classes=2)


def test_a_sharded_classifier_checkpoint_keeps_its_head(tiny_bert_classifier_dir, rng, tmp_path):
    # Only model.safetensors was read: a sharded checkpoint's trained head
    # was silently replaced by a random one (logits off by up to 5.5).
    import shutil

    import transformers

    sharded = str(tmp_path / "sharded")
    model = transformers.BertForSequenceClassification.from_pretrained(tiny_bert_classifier_dir)
    model.save_pretrained(sharded, safe_serialization=True, max_shard_size="20KB")
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(os.path.join(tiny_bert_classifier_dir, name), sharded)
    assert not os.path.exists(os.path.join(sharded, "model.safetensors"))
    tokens = random_tokens(rng)
    expected = _torch_outputs(
        tiny_bert_classifier_dir, tokens, "BertForSequenceClassification").logits.numpy()
    teacher = loading.load_teacher(sharded)
    np.testing.assert_allclose(teacher.predict_on_batch(tokens), expected, atol=1e-4)
    # A shard named by the index is a file of the folder, not any path.
    index = os.path.join(sharded, "model.safetensors.index.json")
    with open(index) as f:
        weight_map = json.load(f)
    shard = weight_map["weight_map"]["classifier.weight"]
    weight_map["weight_map"]["classifier.weight"] = os.path.join("..", "sharded", shard)
    with open(index, "w") as f:
        json.dump(weight_map, f)
    with pytest.raises(DataError, match=r"model.safetensors.index.json: the shard "
                                        r"'\.\./sharded/.*' is not a file of the checkpoint"):
        loading.load_teacher(sharded)
