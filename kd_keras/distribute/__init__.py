"""Choosing a `tf.distribute` strategy from the environment.

`Distiller` needs nothing beyond the usual Keras recipe: build and compile
inside `strategy.scope()`, then `fit`. `get_strategy()` picks the strategy the
environment asks for:

- `TF_CONFIG` set (a cluster of workers): `MultiWorkerMirroredStrategy`;
- more than one GPU: `MirroredStrategy` over them;
- otherwise: the default strategy (one device).

TPUs: build a `tf.distribute.TPUStrategy` yourself,

    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu="")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    strategy = tf.distribute.TPUStrategy(resolver)

and build and compile the `Distiller` in its scope. The loss shares of
`Distiller` use replica all-reduces, which TPUs support; give the dataset a
fixed batch size (`drop_remainder=True`), as TPUs require static shapes.

Beyond one machine, Ray (`pip install "kd_keras[ray]"`, config
`distribute: {engine: ray}`): `RayCluster` names the cluster and the workers'
resources (`ray_cluster`), `ray_cache_teacher_outputs` builds the teacher
cache on a Ray Data actor pool (`ray_data`), and `fit_on_ray` trains on Ray
Train workers under `MultiWorkerMirroredStrategy` (`ray_train`). Ray itself
is imported only when one of them runs.
"""

import json
import os

import tensorflow as tf

from kd_keras._keras_compat import DistributedFitMixin
from kd_keras._keras_compat import is_multi_worker
from kd_keras._lazy import lazy_exports
from kd_keras.distillation.replicas import global_sum
from kd_keras.errors import UsageError
from kd_keras.errors import one_line
from kd_keras.number_checks import is_int

# The Ray side loads on first use. The Distiller's replica helpers live in
# the core (`kd_keras.distillation.replicas`), so it never imports this package.
_LAZY = {
    "RayCluster": "kd_keras.distribute.ray_cluster",
    "ray_cache_teacher_outputs": "kd_keras.distribute.ray_data",
    "fit_on_ray": "kd_keras.distribute.ray_train",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


STRATEGIES = ("auto", "default", "mirrored", "multi_worker")
# `distribute.engine`: this process, or a Ray cluster.
ENGINES = ("local", "ray")


def get_strategy(name="auto"):
    """Returns the `tf.distribute.Strategy` for `name`.

    Args:
        name: `"auto"` (decide from the environment, see the module doc),
            `"default"`, `"mirrored"` (all local GPUs, or all logical CPUs
            when there is no GPU) or `"multi_worker"` (reads `TF_CONFIG`).

    Returns:
        A `tf.distribute.Strategy`.

    Example:

    >>> import kd_keras
    >>> strategy = kd_keras.distribute.get_strategy("default")
    >>> strategy.num_replicas_in_sync
    1
    """
    if name not in STRATEGIES:
        raise UsageError(
            f"Unknown strategy {name!r}; expected one of {list(STRATEGIES)}")
    if name == "auto":
        name = describe_environment()
    if name == "multi_worker":
        read_tf_config()
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except ValueError as e:  # TensorFlow's check of the cluster it read.
            raise UsageError(f"TF_CONFIG: {one_line(e)}") from None
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices(
            "CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def describe_environment():
    """Names the strategy `get_strategy("auto")` would pick.

    Returns:
        `"multi_worker"`, `"mirrored"` or `"default"`.
    """
    if read_tf_config().get("cluster"):
        return "multi_worker"
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return "mirrored"
    return "default"


def read_tf_config():
    """The `TF_CONFIG` environment variable, checked: `{}` when unset.

    Returns:
        The parsed object: a `cluster` of task lists by type, and a `task`
        whose `type` is one of them and whose `index` is in its list.

    Raises:
        UsageError: one line naming `TF_CONFIG` and what is wrong.

    Example:

    >>> os.environ["TF_CONFIG"] = '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}'
    >>> read_tf_config()
    Traceback (most recent call last):
    ...
    kd_keras.errors.UsageError: TF_CONFIG: task.index 1 is not a position in cluster.worker (it lists 1 task)
    >>> del os.environ["TF_CONFIG"]; read_tf_config()
    {}
    """
    text = os.environ.get("TF_CONFIG")
    if not text:
        return {}
    try:
        config = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise UsageError(f"TF_CONFIG: not valid JSON ({one_line(e)})") from None
    if not isinstance(config, dict):
        raise UsageError(f"TF_CONFIG: expected a JSON object, got {text[:60]!r}")
    cluster, task = config.get("cluster", {}), config.get("task", {})
    if not isinstance(cluster, dict) or not all(
            isinstance(v, list) and all(isinstance(a, str) for a in v)
            for v in cluster.values()):
        raise UsageError("TF_CONFIG: cluster must map each task type to a list of "
                         "\"host:port\" addresses")
    if not cluster:
        return config
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise UsageError(f"TF_CONFIG: task.type must be one of {sorted(cluster)}, got "
                         f"{task.get('type') if isinstance(task, dict) else task!r}")
    index, tasks = task.get("index", 0), cluster[task["type"]]
    if not is_int(index) or not 0 <= index < len(tasks):
        plural = "" if len(tasks) == 1 else "s"
        raise UsageError(f"TF_CONFIG: task.index {index!r} is not a position in "
                         f"cluster.{task['type']} (it lists {len(tasks)} task{plural})")
    return config


__all__ = [
    "DistributedFitMixin",
    "ENGINES",
    "RayCluster",
    "STRATEGIES",
    "describe_environment",
    "fit_on_ray",
    "get_strategy",
    "global_sum",
    "is_multi_worker",
    "ray_cache_teacher_outputs",
]
