"""A uniform, streaming view of the inputs `x` a teacher runs on.

`x` may be a NumPy array (or anything array-like, including `np.memmap`), a
flat dict of such arrays, or an unbatched `tf.data.Dataset` whose elements are
a tensor or a flat dict of tensors. `Inputs` hands them out in chunks of a
fixed number of examples, so neither the cache builder nor the fingerprint
ever holds all of `x` in memory.
"""

import numpy as np

from kd_keras.errors import UsageError

# The name of the single leaf when `x` is one array rather than a dict.
SINGLE = "x"


def model_input(leaves, is_dict):
    """What a model reads as `x`, from a dict of leaves: the dict itself
    for named inputs, else its one array.

    Example:

    >>> model_input({"x": [1, 2]}, is_dict=False)
    [1, 2]
    """
    return dict(leaves) if is_dict else leaves[SINGLE]


def _is_dataset(x):
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover - TensorFlow is a hard dependency.
        return False
    return isinstance(x, tf.data.Dataset)


class Inputs:
    """Wraps `x` and streams it in fixed-size chunks.

    Args:
        x: a NumPy array, a flat dict of arrays, or an unbatched
            `tf.data.Dataset` of tensors or flat dicts of tensors.
        name: how error messages call `x` (for example `"x"`).

    Attributes:
        is_dict: whether examples are dicts (`True`) or single arrays.
        is_dataset: whether `x` is a `tf.data.Dataset`.
        count: number of examples, or `None` when a dataset's cardinality is
            unknown.

    Example:

    >>> import numpy as np
    >>> inputs = Inputs({"ids": np.arange(10).reshape(5, 2)})
    >>> [len(c["ids"]) for c in inputs.chunks(2)]
    [2, 2, 1]
    """

    def __init__(self, x, name="x"):
        self.name = name
        self.is_dataset = _is_dataset(x)
        if self.is_dataset:
            self._init_dataset(x)
        else:
            self._init_arrays(x)

    def _init_arrays(self, x):
        if isinstance(x, dict):
            if not x:
                raise UsageError(f"{self.name}: is an empty dict; expected arrays")
            self.is_dict = True
            leaves = {str(k): v for k, v in x.items()}
        elif isinstance(x, (list, tuple)):
            raise UsageError(
                f"{self.name}: must be an array, a dict of arrays or an "
                f"unbatched tf.data.Dataset, got a {type(x).__name__} (wrap a "
                "list with np.asarray, or pass named inputs as a dict)"
            )
        else:
            self.is_dict = False
            leaves = {SINGLE: x}
        self._leaves = {}
        for key, value in leaves.items():
            if not hasattr(value, "shape"):
                value = np.asarray(value)
            if len(value.shape) == 0:
                where = f"{self.name}[{key!r}]" if self.is_dict else self.name
                raise UsageError(f"{where}: is a scalar; expected one row per example")
            self._leaves[key] = value
        lengths = {k: int(v.shape[0]) for k, v in self._leaves.items()}
        if len(set(lengths.values())) != 1:
            raise UsageError(
                f"{self.name}: its arrays have different numbers of examples: {lengths}"
            )
        self.count = next(iter(lengths.values()))
        self._dataset = None

    def _init_dataset(self, x):
        import tensorflow as tf

        spec = x.element_spec
        if isinstance(spec, dict):
            self.is_dict = True
            bad = [k for k, v in spec.items() if not isinstance(v, tf.TensorSpec)]
        elif isinstance(spec, tf.TensorSpec):
            self.is_dict = False
            bad = []
        else:
            raise UsageError(
                f"{self.name}: is a tf.data.Dataset of {type(spec).__name__}; "
                "its elements must be the inputs only (a tensor or a flat "
                "dict of tensors); pass the labels separately as y"
            )
        if bad:
            raise UsageError(
                f"{self.name}: is a tf.data.Dataset whose entries {bad} are not "
                "plain tensors; expected a flat dict of tensors"
            )
        cardinality = int(x.cardinality())
        if cardinality == tf.data.INFINITE_CARDINALITY:
            raise UsageError(f"{self.name}: is an infinite tf.data.Dataset")
        self.count = cardinality if cardinality >= 0 else None
        self._dataset = x
        self._leaves = None

    @property
    def arrays(self):
        """The leaves as a dict of arrays (`None` for a dataset)."""
        return self._leaves

    def chunks(self, size):
        """Yields the examples in order, `size` at a time.

        Each chunk is a dict `{leaf name: np.ndarray}`; the last chunk may be
        shorter. Array inputs are sliced (memory-mapped arrays stay on disk
        until a slice is read); datasets are batched and converted to NumPy.

        Args:
            size: number of examples per chunk.

        Yields:
            dicts of NumPy arrays with the same leading dimension.
        """
        if self._dataset is None:
            for start in range(0, self.count, size):
                yield {
                    k: np.asarray(v[start : start + size])
                    for k, v in self._leaves.items()
                }
            return
        for batch in self._dataset.batch(size).as_numpy_iterator():
            if self.is_dict:
                yield {str(k): np.asarray(v) for k, v in batch.items()}
            else:
                yield {SINGLE: np.asarray(batch)}

    def structure(self, leaves):
        """Turns a dict of leaves back into what a model expects as `x`."""
        return model_input(leaves, self.is_dict)
