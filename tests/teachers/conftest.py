"""Fixtures for teacher tests: tiny Hugging Face BERT checkpoints on disk."""

import json
import os

import numpy as np
import pytest

WORDS = (
    "the a film movie good bad great awful plot actor boring fun love hate "
    "is was not very story scene music slow fast funny sad dull brilliant"
).split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, ".", ",", "!"]


def save_tiny_bert(
    path, num_labels=None, hidden_act="gelu", seed=0, initializer_range=0.5
):
    """Saves a randomly initialised tiny BERT (bare, or with a
    classification head when `num_labels` is set) plus its vocab.txt."""
    import torch
    import transformers

    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
        hidden_act=hidden_act,
        # 0.5 (not BERT's 0.02) makes the exact-vs-tanh GELU gap visible.
        initializer_range=initializer_range,
        **({"num_labels": num_labels} if num_labels else {}),
    )
    cls = (
        transformers.BertForSequenceClassification
        if num_labels
        else transformers.BertModel
    )
    model = cls(config).eval()
    model.save_pretrained(path, safe_serialization=True)
    with open(os.path.join(path, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(VOCAB) + "\n")
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True, "tokenizer_class": "BertTokenizer"}, f)
    return model


def random_tokens(rng, batch=4, length=12):
    """A KerasHub-style token dict with ragged padding."""
    token_ids = rng.integers(5, len(VOCAB), size=(batch, length)).astype("int32")
    token_ids[:, 0] = 2  # [CLS]
    lengths = rng.integers(3, length + 1, size=batch)
    padding_mask = (np.arange(length)[None, :] < lengths[:, None]).astype("int32")
    token_ids[padding_mask == 0] = 0
    segment_ids = np.zeros_like(token_ids)
    return {
        "token_ids": token_ids,
        "padding_mask": padding_mask,
        "segment_ids": segment_ids,
    }


@pytest.fixture
def tiny_bert_dir(tmp_path):
    path = str(tmp_path / "tiny_bert")
    save_tiny_bert(path)
    return path


@pytest.fixture
def small_init_bert_dir(tmp_path):
    """BERT's own initialisation: random features that stay smooth enough
    for a linear head to read words from."""
    path = str(tmp_path / "tiny_bert_small_init")
    save_tiny_bert(path, initializer_range=0.02)
    return path


@pytest.fixture
def tiny_bert_classifier_dir(tmp_path):
    path = str(tmp_path / "tiny_bert_cls")
    save_tiny_bert(path, num_labels=3)
    return path
