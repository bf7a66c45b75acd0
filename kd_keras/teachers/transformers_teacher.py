"""Teachers that are Hugging Face `transformers` models run through PyTorch.

This is the optional `hf` extra: `pip install kd_keras[hf]` installs
`transformers` and `torch`. Both are imported only when such a teacher is
built.
"""

import hashlib
import json
import os

import numpy as np

from kd_keras.errors import UsageError
from kd_keras.errors import first_of
from kd_keras.errors import one_line
from kd_keras.errors import require
from kd_keras.files.hashing import sha256_path
from kd_keras.teachers.base import Teacher

# KerasHub's names for BERT-style inputs, and the `transformers` ones.
_KERAS_HUB_TO_HF = {
    "token_ids": "input_ids",
    "padding_mask": "attention_mask",
    "segment_ids": "token_type_ids",
}
# The files a checkpoint folder's tokenizer is read from; one of the first
# six must be there, and all that are there enter the fingerprint.
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model",
                   "sentencepiece.bpe.model", "tokenizer.model", "merges.txt",
                   "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")


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
        sequence_length: pad/truncate raw text to this many tokens; `None`
            is 128, or the model's positions when it has fewer.
        local_files_only: passed to `from_pretrained` for the model and its
            tokenizer; `True` (the default) never touches the network, so
            `source` must be a folder or already in the local Hugging Face
            cache.

    Raises:
        UsageError: `source` cannot be loaded, or its checkpoint lacks
            weights the model needs (they would start random: a config for
            another architecture, a bare encoder read as a classifier), or
            holds weights of another shape.

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
        sequence_length=None,
        local_files_only=True,
    ):
        torch, transformers = _require_hf()
        self._torch = torch
        self.source = source
        self.output = output
        self.sequence_length = sequence_length
        self.local_files_only = local_files_only
        loader = getattr(transformers, auto_class, None)
        if loader is None or not auto_class.startswith("AutoModel"):
            raise UsageError(f"auto_class: must be a transformers AutoModel class "
                             f"(AutoModelForSequenceClassification, AutoModel), got {auto_class!r}")
        try:
            self.hf_model, info = loader.from_pretrained(
                source, local_files_only=local_files_only, output_loading_info=True)
        except Exception as e:  # noqa: BLE001 (a damaged checkpoint raises many kinds)
            raise UsageError(f"{source}: cannot load a transformers model "
                             f"({type(e).__name__}: {one_line(e)})") from e
        missing = sorted(info.get("missing_keys") or ()) + sorted(
            str(k) for k in info.get("mismatched_keys") or ())
        if missing:
            raise UsageError(
                f"{source}: the checkpoint has no trained weights for {first_of(missing)} "
                f"of {type(self.hf_model).__name__} (they would start random); check its "
                "config.json's model_type and auto_class")
        positions = getattr(self.hf_model.config, "max_position_embeddings", None)
        if sequence_length is None:
            sequence_length = min(128, positions) if isinstance(positions, int) else 128
        self.sequence_length = sequence_length
        if isinstance(positions, int) and sequence_length > positions:
            raise UsageError(f"sequence_length: {sequence_length} is longer than the "
                             f"{positions} positions {source} has")
        self.hf_model.eval()
        self._tokenizer = None
        self._fingerprint = None

    @property
    def tokenizer(self):
        """The checkpoint's own tokenizer, for raw-text batches."""
        if self._tokenizer is None:
            _, transformers = _require_hf()
            if os.path.isdir(self.source) and not any(
                    os.path.isfile(os.path.join(self.source, f)) for f in TOKENIZER_FILES[:6]):
                raise UsageError(
                    f"{self.source}: has no tokenizer ({', '.join(TOKENIZER_FILES[:3])}, ...) "
                    "for raw text; add the model's tokenizer files, or give token ids")
            try:
                self._tokenizer = transformers.AutoTokenizer.from_pretrained(
                    self.source, local_files_only=self.local_files_only)
            except (OSError, ValueError) as e:
                raise UsageError(f"{self.source}: cannot load its tokenizer ({one_line(e)})") from e
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
        value = outputs.get(self.output) if hasattr(outputs, "get") else None
        if value is None or not hasattr(value, "detach"):
            raise UsageError(
                f"output: {self.source} gives no tensor {self.output!r}; it returns "
                f"{list(outputs.keys())}")
        return value.detach().cpu().numpy().astype(np.float32)

    def fingerprint(self):
        if self._fingerprint is None:
            digest = hashlib.sha256(b"transformers")
            config = self.hf_model.config.to_dict()
            config.pop("transformers_version", None)
            digest.update(json.dumps(config, sort_keys=True, default=str).encode())
            digest.update(f"{self.output}|{self.sequence_length}".encode())
            for name in TOKENIZER_FILES:  # Raw text is read through them.
                path = os.path.join(self.source, name)
                if os.path.isfile(path):
                    digest.update(name.encode() + b"\0" + sha256_path(path).encode())
            for name, tensor in sorted(self.hf_model.state_dict().items()):
                value = tensor.detach().cpu().contiguous().numpy()
                digest.update(name.encode("utf-8"))
                digest.update(str(value.dtype).encode() + str(value.shape).encode())
                digest.update(value.tobytes())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint
