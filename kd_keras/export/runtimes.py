"""One runtime per artifact format, each reduced to `load` and `run`.

Verification (`kd_keras.export.verify`) has a single loop for every format;
a runtime only knows how to open its artifact and turn a batch of named
inputs into float32 logits. Each runs single-threaded, as deployed on one
core: TensorFlow (a `Session` with one thread, as TF Serving runs a
SavedModel), the LiteRT interpreter, and ONNX Runtime. MediaPipe's text
classifier takes raw sentences and returns probabilities.
"""

import contextlib
import os

import numpy as np

from kd_keras.errors import UsageError
from kd_keras.errors import require
from kd_keras.export.formats import FORMATS
from kd_keras.export.layout import TEXT_SIGNATURE
from kd_keras.export.layout import sidecar_path
from kd_keras.export.safe_reading import read_json_file

LOGITS = "logits"
SIGNATURE = "serving_default"


class Runtime:
    """Runs one exported artifact.

    Subclasses set `format` and implement `load(path)` and `outputs(inputs)`;
    `run` keeps the logits. A signature the artifact lacks is a
    `MissingSignatureError` at `load`.

    Example:

    >>> with load_runtime("onnx", "out/onnx/model.onnx") as rt:  # doctest: +SKIP
    ...     rt.run({"features": x}).shape
    (32, 10)
    """

    format = None
    # True when `run` returns probabilities (compared with the softmax of
    # the Keras logits) rather than logits.
    returns_probabilities = False

    def __init__(self, signature=None):
        self.signature = signature

    def load(self, path):
        """Opens the artifact at `path`; returns `self`."""
        raise NotImplementedError

    def outputs(self, inputs):
        """Runs a batch `{input name: array}`; returns `{output name:
        array}`, every output of the signature (a text model's
        `probabilities` and `classes` beside its `logits`)."""
        raise NotImplementedError

    def run(self, inputs):
        """Runs a batch `{input name: array}`; returns float32 logits."""
        return np.asarray(self.outputs(inputs)[LOGITS], np.float32)

    def time_calls(self, inputs, runs, max_seconds=None, warmup=1):
        """Times `run(inputs)` with `kd_keras.timing.time_calls`; returns
        the calls' milliseconds."""
        from kd_keras.timing import time_calls

        return time_calls(lambda: self.run(inputs), runs, max_seconds=max_seconds,
                          warmup=warmup)

    def close(self):
        """Releases what `load` opened (a no-op unless a runtime holds a
        native handle); a closed runtime cannot `run`."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class SavedModelRuntime(Runtime):
    """TensorFlow, through a signature (default `serving_default`),
    single-threaded."""

    format = "saved_model"

    def load(self, path):
        import tensorflow as tf

        from kd_keras._keras_compat import silenced_deprecations

        self._graph = tf.Graph()
        config = tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=1, inter_op_parallelism_threads=1
        )
        # A SavedModel with a raw-text signature holds TF-Text ops: loading
        # any of its signatures needs them registered.
        import tensorflow_text  # noqa: F401
        with self._graph.as_default(), silenced_deprecations():
            self._session = tf.compat.v1.Session(graph=self._graph, config=config)
            meta = tf.compat.v1.saved_model.loader.load(
                self._session, ["serve"], path
            )
        signature = _signature(path, meta.signature_def, self.signature or SIGNATURE)
        self._feeds = {k: v.name for k, v in signature.inputs.items()}
        self._fetches = {k: v.name for k, v in signature.outputs.items()}
        return self

    def outputs(self, inputs):
        feed = {self._feeds[k]: v for k, v in inputs.items()}
        return self._session.run(self._fetches, feed)

    def run(self, inputs):  # The logits alone: what verify compares and times.
        feed = {self._feeds[k]: v for k, v in inputs.items()}
        return np.asarray(self._session.run(self._fetches[LOGITS], feed), np.float32)


class LiteRTRuntime(Runtime):
    """The LiteRT interpreter (`ai_edge_litert`), single-threaded.

    Integer-only models get their float inputs quantized and their logits
    dequantized with the tensors' own scale and zero point. Models with
    TF-Text custom ops (marked in the JSON sidecar, or asked for by their
    raw-text signature) run through `InterpreterWithCustomOps` with
    `SELECT_TFTEXT_OPS`.
    """

    format = "tflite"

    def load(self, path):
        litert = require("ai_edge_litert.interpreter", "export", "TFLite verification")

        sidecar = sidecar_path(path)
        custom, signature = False, self.signature
        if os.path.lexists(sidecar):  # Read within limits: a FIFO never ends.
            meta = read_json_file(sidecar)
            custom = bool(meta.get("tftext_custom_ops"))
            signature = signature or meta.get("signature")
        signature = signature or SIGNATURE
        if custom or signature == TEXT_SIGNATURE:
            from tensorflow_text import tflite_registrar

            self._interpreter = litert.InterpreterWithCustomOps(
                custom_op_registerers=tflite_registrar.SELECT_TFTEXT_OPS,
                model_path=path,
                num_threads=1,
            )
        else:
            self._interpreter = litert.Interpreter(model_path=path, num_threads=1)
        _signature(path, self._interpreter.get_signature_list(), signature)
        self._runner = self._interpreter.get_signature_runner(signature)
        self._in = self._runner.get_input_details()
        self._out = self._runner.get_output_details()
        return self

    def outputs(self, inputs):
        feed = {}
        for name, value in inputs.items():
            detail = self._in[name]
            dtype = np.dtype(detail["dtype"])
            scale, zero = detail["quantization"]
            if dtype.kind == "S" and value.dtype.kind != "S":  # Raw text.
                value = np.array(
                    [v if isinstance(v, bytes) else str(v).encode("utf-8")
                     for v in value.ravel()],
                    dtype=object,
                ).reshape(value.shape)
            elif scale and value.dtype.kind == "f" and dtype.kind in "iu":
                info = np.iinfo(dtype)
                value = np.clip(np.round(value / scale + zero), info.min, info.max)
            feed[name] = np.asarray(value, dtype)
        outputs = self._runner(**feed)
        for name, value in outputs.items():
            scale, zero = self._out[name]["quantization"]
            if scale and np.dtype(self._out[name]["dtype"]).kind in "iu":
                outputs[name] = (value.astype(np.float32) - zero) * scale
        return outputs


class OnnxRuntime(Runtime):
    """ONNX Runtime on the CPU execution provider, single-threaded."""

    format = "onnx"

    def load(self, path):
        ort = require("onnxruntime", "export", "ONNX verification")

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            path, options, providers=["CPUExecutionProvider"]
        )
        return self

    def outputs(self, inputs):
        names = [o.name for o in self._session.get_outputs()]
        return dict(zip(names, self._session.run(names, dict(inputs))))

    def run(self, inputs):  # The logits alone: what verify compares and times.
        return np.asarray(self._session.run([LOGITS], dict(inputs))[0], np.float32)


class MediaPipeRuntime(Runtime):
    """MediaPipe Tasks' `TextClassifier` (Python) on raw sentences: it
    tokenizes with the vocabulary in the model's metadata and returns the
    class probabilities, in class-id order (`returns_probabilities`).

    The classifier runs in a child process cut off from the network
    (`kd_keras.export.mediapipe_child`): MediaPipe's native library would
    otherwise send a usage log to Google. Where the system cannot cut a
    process off, it runs anyway, with a `KdKerasWarning` saying so.
    """

    format = "mediapipe"
    returns_probabilities = True
    # The class names by class id, as the classifier's last `run` gave them.
    class_names = None
    _child = _stderr = None  # The child process and its stderr, once loaded.

    def load(self, path):
        import subprocess
        import sys
        import tempfile

        from kd_keras.export.mediapipe_metadata import require_mediapipe

        require_mediapipe()
        # The child imports this copy of kd_keras, wherever it was found.
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        paths = [os.path.dirname(package_root), os.environ.get("PYTHONPATH", "")]
        self._stderr = tempfile.TemporaryFile()
        self._child = subprocess.Popen(
            [sys.executable, "-m", "kd_keras.export.mediapipe_child", os.path.abspath(path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            text=True, encoding="utf-8",
            env=dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p)))
        try:
            ready = self._reply()
        except BaseException:
            self.close()
            raise
        if "error" in ready:
            self.close()
            raise RuntimeError(f"{path}: MediaPipe's TextClassifier cannot load it "
                               f"({ready['error']})")
        if not ready["ready"]["isolated"]:
            import warnings

            from kd_keras.errors import KdKerasWarning

            warnings.warn("MediaPipe's runtime may send a usage log to Google "
                          "(play.googleapis.com): this system does not let kd_keras run it "
                          "cut off from the network", KdKerasWarning, stacklevel=2)
        return self

    def _reply(self, request=None):
        """Sends `request` (when given) to the child; returns its answer."""
        import json

        try:
            if request is not None:
                self._child.stdin.write(json.dumps(request) + "\n")
                self._child.stdin.flush()
            line = self._child.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            self._stderr.seek(0)
            tail = self._stderr.read()[-2000:].decode("utf-8", "replace")
            raise RuntimeError(f"MediaPipe's child process ended (status "
                               f"{self._child.wait()}):\n{tail}")
        return json.loads(line)

    @staticmethod
    def _texts(inputs):
        (texts,) = inputs.values()
        return [t.decode("utf-8") if isinstance(t, bytes) else str(t)
                for t in np.asarray(texts).ravel()]

    def outputs(self, inputs):
        """`{"probabilities": ...}`: the classifier gives no logits."""
        return {"probabilities": self.run(inputs)}

    def run(self, inputs):
        answer = self._reply({"texts": self._texts(inputs)})
        self.class_names = answer["class_names"]
        return np.asarray(answer["probabilities"], np.float32)

    @property
    def process_id(self):
        """The child process's id (`None` once closed)."""
        return None if self._child is None else self._child.pid

    def time_calls(self, inputs, runs, max_seconds=None, warmup=1):
        """As `Runtime.time_calls`, timed inside the child (no pipe in the
        figures)."""
        answer = self._reply({"time": self._texts(inputs), "runs": runs,
                              "max_seconds": max_seconds, "warmup": warmup})
        return np.asarray(answer["milliseconds"], np.float64)

    def close(self):
        child, self._child = self._child, None
        if child is not None:
            with contextlib.suppress(OSError):  # A child that ended has no reader.
                child.stdin.close()  # The child closes its classifier and ends.
            try:
                child.wait(timeout=60)
            except Exception:
                child.kill()
                child.wait()
            child.stdout.close()
        stderr, self._stderr = self._stderr, None
        if stderr is not None:
            stderr.close()


class MissingSignatureError(UsageError):
    """An artifact without the signature asked for (token ids only, where
    raw text was wanted)."""


def _signature(path, signatures, name):
    """`signatures[name]`, or a one-line error naming what `path` has."""
    if name not in signatures:
        # `__saved_model_init_op` is TensorFlow's, not a signature to run.
        have = ", ".join(sorted(s for s in signatures if not s.startswith("__"))) or "none"
        raise MissingSignatureError(f"{path}: has no {name} signature (it has {have})")
    return signatures[name]


RUNTIMES = {
    cls.format: cls
    for cls in (SavedModelRuntime, LiteRTRuntime, OnnxRuntime, MediaPipeRuntime)
}


def get_runtime(format, signature=None):
    """A fresh, unloaded runtime for one artifact format.

    Args:
        format: `"saved_model"`, `"tflite"`, `"onnx"` or `"mediapipe"`.
        signature: the signature to run (default `serving_default`; a
            TFLite sidecar names its own).

    Returns:
        A `Runtime`; `load(path)` loads an artifact into it.

    Raises:
        UsageError: an unknown format.

    Example:

    >>> get_runtime("onnx").format
    'onnx'
    """
    if format not in RUNTIMES:
        raise UsageError(
            f"format: unknown value {format!r} (known: {', '.join(FORMATS)})"
        )
    return RUNTIMES[format](signature)


def load_runtime(format, path, signature=None):
    """The runtime for `format` with the artifact at `path` loaded.

    Args:
        format: as `get_runtime`.
        path: the artifact (a file, or a SavedModel folder).
        signature: as `get_runtime`.

    Returns:
        The loaded `Runtime`; use it in a `with` block, which closes it.

    Example:

    >>> with load_runtime("onnx", "out/onnx/model.onnx") as runtime:  # doctest: +SKIP
    ...     logits = runtime.run(inputs)
    """
    return get_runtime(format, signature).load(path)
