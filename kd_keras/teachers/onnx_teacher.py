"""Teachers stored as ONNX models, run through ONNX Runtime."""

import hashlib
import os

import numpy as np

from kd_keras.errors import MissingFileError
from kd_keras.errors import UsageError
from kd_keras.errors import one_line
from kd_keras.errors import require
from kd_keras.files.hashing import sha256_path
from kd_keras.teachers.base import Teacher


def external_data_files(path):
    """The external data files an ONNX model names (weights saved beside
    it, `save_as_external_data`), as its tensors spell them.

    Args:
        path: the `.onnx` file.

    Returns:
        The sorted locations, relative to the model's folder.

    Example:

    >>> external_data_files("teacher.onnx")            # doctest: +SKIP
    ['teacher.onnx.data']
    """
    onnx = require("onnx", "export", "ONNX teachers")
    from onnx.external_data_helper import ExternalDataInfo
    from onnx.external_data_helper import uses_external_data

    model = onnx.load(path, load_external_data=False)
    tensors, graphs = [], [model.graph]
    while graphs:
        graph = graphs.pop()
        tensors += list(graph.initializer) + [s.values for s in graph.sparse_initializer]
        for node in graph.node:
            for attribute in node.attribute:
                graphs += ([attribute.g] if attribute.HasField("g") else []) + list(
                    attribute.graphs)
                tensors += ([attribute.t] if attribute.HasField("t") else []) + list(
                    attribute.tensors)
    return sorted({ExternalDataInfo(t).location for t in tensors if uses_external_data(t)})


class OnnxTeacher(Teacher):
    """A teacher that runs an ONNX model with ONNX Runtime on the CPU.

    It runs outside the TensorFlow graph (`in_graph=False`): use it through
    `kd_keras.cache.cache_teacher_outputs`, not inside `Distiller.fit`.
    The fingerprint hashes the file's bytes, those of the external data
    files it names (weights saved beside it) and the chosen output.

    Args:
        path: the `.onnx` file.
        output_name: the graph output that holds the logits; `None` for
            a graph with one output (several are refused: which one holds
            the logits is the caller's to say).

    Example:

    >>> teacher = OnnxTeacher("teacher.onnx")          # doctest: +SKIP
    >>> teacher.predict_on_batch(x_batch).shape        # doctest: +SKIP
    (32, 10)
    """

    in_graph = False

    def __init__(self, path, output_name=None):
        ort = require("onnxruntime", "export", "ONNX teachers")

        if not os.path.isfile(path):
            raise MissingFileError(f"{path}: no such ONNX file")
        self.path = path
        options = ort.SessionOptions()
        options.log_severity_level = 4  # Errors reach the caller as exceptions; no log lines.
        try:
            self.session = ort.InferenceSession(
                path, options, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises its own exception types.
            raise UsageError(f"{path}: not a valid ONNX model ({one_line(e)})") from e
        self.input_names = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if output_name is None and len(outputs) != 1:
            raise UsageError(f"{path} returns several outputs {outputs}; choose one with "
                             "output_name=... in Python, or export a model whose only "
                             "output is the logits")
        if output_name is None:
            output_name = outputs[0]
        elif output_name not in outputs:
            raise UsageError(f"{path}: no output '{output_name}'; outputs are {outputs}")
        self.output_name = output_name
        self._fingerprint = None

    def _feed(self, x):
        if isinstance(x, dict):
            missing = [n for n in self.input_names if n not in x]
            if missing:
                raise UsageError(
                    f"{self.path}: batch lacks input(s) {missing}; got keys {sorted(x)}")
            return {n: self._cast(n, x[n]) for n in self.input_names}
        if len(self.input_names) != 1:
            raise UsageError(
                f"{self.path}: the model has inputs {self.input_names}; pass a "
                "dict keyed by these names")
        return {self.input_names[0]: self._cast(self.input_names[0], x)}

    def _cast(self, name, value):
        value = np.asarray(value)
        onnx_type = next(i.type for i in self.session.get_inputs() if i.name == name)
        dtypes = {
            "tensor(float)": np.float32,
            "tensor(float16)": np.float16,
            "tensor(double)": np.float64,
            "tensor(int32)": np.int32,
            "tensor(int64)": np.int64,
            "tensor(bool)": np.bool_,
        }
        return value.astype(dtypes[onnx_type]) if onnx_type in dtypes else value

    def predict_on_batch(self, x):
        """The logits of one batch, float32; a model exported for a fixed
        batch size (`torch.onnx.export` without `dynamic_axes`) runs it in
        chunks of that size, the last one padded by repeating its last row."""
        feed = self._feed(x)
        n = len(next(iter(feed.values())))
        size = self.session.get_inputs()[0].shape[0] if self.session.get_inputs() else None
        if not isinstance(size, int) or size <= 0 or size == n or n == 0:
            return np.asarray(self._run(feed), dtype=np.float32)
        chunks = []
        for start in range(0, n, size):
            rows = np.minimum(np.arange(start, start + size), n - 1)
            logits = self._run({k: v[rows] for k, v in feed.items()})
            chunks.append(np.asarray(logits)[: min(size, n - start)])
        return np.concatenate(chunks).astype(np.float32)

    def _run(self, feed):
        """The logits output for one feed; ONNX Runtime's refusal of the
        inputs (a shape, an id past an embedding table) is one line."""
        try:
            (logits,) = self.session.run([self.output_name], feed)
        except Exception as e:  # noqa: BLE001 (onnxruntime raises its own types)
            shapes = {k: f"{v.dtype}{list(v.shape)}" for k, v in feed.items()}
            raise UsageError(f"{self.path}: ONNX Runtime cannot run it on inputs {shapes} "
                             f"({one_line(e)})") from None
        return logits

    def fingerprint(self):
        if self._fingerprint is None:
            digest = hashlib.sha256(b"onnx")
            digest.update(self.output_name.encode("utf-8"))
            digest.update(sha256_path(self.path).encode("ascii"))
            folder = os.path.dirname(self.path)
            for location in external_data_files(self.path):  # ONNX Runtime checked them.
                digest.update(location.encode("utf-8") + b"\0")
                digest.update(sha256_path(os.path.join(folder, location)).encode("ascii"))
            self._fingerprint = digest.hexdigest()
        return self._fingerprint
