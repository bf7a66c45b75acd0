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
        raise ValueError(
            f"Unknown strategy {name!r}; expected one of {list(STRATEGIES)}")
    if name == "auto":
        name = describe_environment()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
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
    tf_config = os.environ.get("TF_CONFIG")
    if tf_config:
        try:
            cluster = json.loads(tf_config).get("cluster", {})
        except json.JSONDecodeError as e:
            raise ValueError(f"TF_CONFIG is not valid JSON: {e}") from None
        if cluster:
            return "multi_worker"
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return "mirrored"
    return "default"


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
