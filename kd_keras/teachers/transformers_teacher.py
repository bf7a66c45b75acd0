"""Teachers that are Hugging Face `transformers` models run through PyTorch.

This is the optional `hf` extra: `pip install kd_keras[hf]` installs
`transformers` and `torch`. Both are imported only when such a teacher is
built.
"""

import hashlib
import json

import numpy as np

from kd_keras.errors import UsageError
from kd_keras.errors import require
from kd_keras.teachers.base import Teacher

# KerasHub's names for BERT-style inputs, and the `transformers` ones.
_KERAS_HUB_TO_HF = {
    "token_ids": "input_ids",
    "padding_mask": "attention_mask",
    "segment_ids": "token_type_ids",
}


def _require_hf():
    torch = require("torch", "hf", "Hugging Face teachers")
    transformers = require("transformers", "hf", "Hugging Face teachers")
    return torch, transformers


class TransformersTeacher(Teacher):
    """A `transformers` model run with PyTorch under `torch.no_grad()`.

    It runs outside the TensorFlow graph (`in_graph=False`): use it through
    `kd_keras.cache.cache_teacher_outputs`. A batch is either raw text (a
    sequence of `str`/`bytes`, tokenized with the model's own tokenizer) or a
    dict of token arrays, keyed the `transformers` way (`input_ids`,
    `attention_mask`, `token_type_ids`) or the KerasHub way (`token_ids`,
    `padding_mask`, `segment_ids`).

    Args:
        source: a Hugging Face model id or a local checkpoint directory.
        output: the model output to return: `"logits"` for a task model,
            `"last_hidden_state"` or `"pooler_output"` for a bare encoder.
        auto_class: the `transformers` auto class used to load `source`,
            `"AutoModelForSequenceClassification"` by default (use
            `"AutoModel"` for a bare encoder).
        sequence_length: pad/truncate raw text to this many tokens.
        local_files_only: passed to `from_pretrained`; `True` never touches
            the network.

    Example:

    >>> teacher = TransformersTeacher("path/to/bert_checkpoint")   # doctest: +SKIP
    >>> teacher.predict_on_batch(["a fine film", "dull"]).shape    # doctest: +SKIP
    (2, 2)
    """

    in_graph = False

    def __init__(
        self,
        source,
        output="logits",
        auto_class="AutoModelForSequenceClassification",
        sequence_length=128,
        local_files_only=False,
    ):
        torch, transformers = _require_hf()
        self._torch = torch
        self.source = source
        self.output = output
        self.sequence_length = sequence_length
        loader = getattr(transformers, auto_class, None)
        if loader is None:
            raise UsageError(f"auto_class: transformers has no class {auto_class!r}")
        try:
            self.hf_model = loader.from_pretrained(
                source, local_files_only=local_files_only
            )
        except (OSError, ValueError) as e:
            raise UsageError(f"{source}: cannot load a transformers model ({e})") from e
        self.hf_model.eval()
        self._tokenizer = None
        self._fingerprint = None

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            _, transformers = _require_hf()
            self._tokenizer = transformers.AutoTokenizer.from_pretrained(self.source)
        return self._tokenizer

    def _encode(self, x):
        torch = self._torch
        if isinstance(x, dict):
            feed = {_KERAS_HUB_TO_HF.get(k, k): np.asarray(v) for k, v in x.items()}
            return {k: torch.as_tensor(v.astype(np.int64)) for k, v in feed.items()}
        texts = [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in x]
        return dict(
            self.tokenizer(
                texts,
                padding="max_length",
                truncation=True,
                max_length=self.sequence_length,
                return_tensors="pt",
            )
        )

    def predict_on_batch(self, x):
        with self._torch.no_grad():
            outputs = self.hf_model(**self._encode(x))
        if not hasattr(outputs, self.output) and self.output not in outputs:
            raise UsageError(
                f"{self.source}: the model has no output '{self.output}'; "
                f"it returns {list(outputs.keys())}")
        return outputs[self.output].detach().cpu().numpy().astype(np.float32)

    def fingerprint(self):
        if self._fingerprint is None:
            digest = hashlib.sha256(b"transformers")
            config = self.hf_model.config.to_dict()
            config.pop("transformers_version", None)
            digest.update(json.dumps(config, sort_keys=True, default=str).encode())
            digest.update(f"{self.output}|{self.sequence_length}".encode())
            for name, tensor in sorted(self.hf_model.state_dict().items()):
                value = tensor.detach().cpu().contiguous().numpy()
                digest.update(name.encode("utf-8"))
                digest.update(str(value.dtype).encode() + str(value.shape).encode())
                digest.update(value.tobytes())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint
