"""Where Ray jobs run: the cluster settings and the connection to it.

`RayCluster` is the Python equivalent of the config's `distribute:` section
with `engine: ray`; `connect(cluster)` attaches this process to the cluster
(or starts a local one) before anything is written, so a cluster that cannot
be reached is a one-line `UsageError` within seconds:

- `address="auto"`: the running cluster this machine knows (`RAY_ADDRESS`,
  or the one `ray start --head` started here), else a new local one;
- `address="HOST:PORT"` (a head node's GCS port, 6379 by default) or
  `"ray://HOST:PORT"` (Ray Client, 10001): that cluster, which must answer
  a Ray request within `CONNECT_TIMEOUT_S` (a port that is open but not
  Ray's is refused too: `ray.init` would retry it forever).

A process already connected (`ray.init` called earlier, as the tests do)
keeps its connection whatever the address.

Example:

>>> cluster = RayCluster(workers=2, cpus_per_worker=1)
>>> cluster.actor_resources()
{'num_cpus': 1.0, 'num_gpus': 0.0}
>>> parse_address("ray://head.example:10001")
('head.example', 10001)
>>> RayCluster(workers=0)
Traceback (most recent call last):
...
kd_keras.errors.UsageError: distribute.workers: must be a positive integer, got 0
"""

import contextlib
import dataclasses
import math
import os
import signal
import socket
import threading

from kd_keras.errors import KdKerasError
from kd_keras.errors import UsageError
from kd_keras.errors import one_line
from kd_keras.errors import require

EXTRA = "ray"
AUTO = "auto"
CONNECT_TIMEOUT_S = 5.0
DEFAULT_GCS_PORT = 6379
DEFAULT_CLIENT_PORT = 10001


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_amount(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


@dataclasses.dataclass(frozen=True)
class RayCluster:
    """The Ray cluster and the resources of each worker.

    Attributes:
        address: `"auto"`, `"HOST:PORT"` or `"ray://HOST:PORT"` (see the
            module doc).
        workers: cache-building actors and training workers.
        cpus_per_worker: CPUs each worker reserves; it also sets the worker's
            TensorFlow thread pools.
        gpus_per_worker: GPUs each worker reserves (0 for CPU only).
    """

    address: str = AUTO
    workers: int = 2
    cpus_per_worker: float = 1
    gpus_per_worker: float = 0

    def __post_init__(self):
        check_settings(self.address, self.workers, self.cpus_per_worker,
                       self.gpus_per_worker)

    @classmethod
    def from_config(cls, distribute):
        """The cluster of a config's `DistributeConfig`."""
        return cls(address=distribute.address, workers=distribute.workers,
                   cpus_per_worker=distribute.cpus_per_worker,
                   gpus_per_worker=distribute.gpus_per_worker)

    def actor_resources(self):
        """`num_cpus`/`num_gpus` keyword arguments of one worker."""
        return {"num_cpus": float(self.cpus_per_worker),
                "num_gpus": float(self.gpus_per_worker)}

    @property
    def threads(self):
        """TensorFlow threads per worker: its CPUs, at least one."""
        return max(1, int(self.cpus_per_worker))


def check_settings(address, workers, cpus_per_worker, gpus_per_worker,
                   prefix="distribute."):
    """Raises `UsageError` naming the first bad setting (as a config key)."""
    import math

    def bad(key, what, value):
        raise UsageError(f"{prefix}{key}: must be {what}, got {value!r}")

    def finite(value):  # Not inf, nan, nor an integer beyond a float's range.
        try:
            return math.isfinite(value)
        except OverflowError:
            return False

    if not isinstance(address, str) or not address.strip():
        bad("address", '"auto", "HOST:PORT" or "ray://HOST:PORT"', address)
    if address != AUTO:
        parse_address(address)
    if not _is_count(workers) or not finite(workers):
        bad("workers", "a positive integer", workers)
    if not _is_amount(cpus_per_worker) or cpus_per_worker == 0 or not finite(cpus_per_worker):
        bad("cpus_per_worker", "a positive number", cpus_per_worker)
    if not _is_amount(gpus_per_worker) or not finite(gpus_per_worker):
        bad("gpus_per_worker", "a non-negative number", gpus_per_worker)


def check_fits(available, cluster):
    """Refuses workers the cluster cannot place: Ray Train would wait for
    them for ever, without a word.

    Args:
        available: the cluster's resources (`ray.cluster_resources()`).
        cluster: the `RayCluster` asked for.

    Raises:
        UsageError: naming the resource, what the workers need and what the
            cluster has.

    Example:

    >>> from kd_keras.distribute import RayCluster
    >>> check_fits({"CPU": 2.0}, RayCluster(workers=3, cpus_per_worker=1))
    Traceback (most recent call last):
    ...
    kd_keras.errors.UsageError: distribute: 3 workers of 1 CPU need 3 CPUs, and the Ray cluster has 2; lower distribute.workers or distribute.cpus_per_worker (an autoscaling cluster's nodes must be up before the run)
    """
    for kind, key, per in (("CPU", "cpus_per_worker", cluster.cpus_per_worker),
                           ("GPU", "gpus_per_worker", cluster.gpus_per_worker)):
        need, have = cluster.workers * per, float(available.get(kind, 0))
        if need > have + 1e-9:
            raise UsageError(
                f"distribute: {cluster.workers} workers of {per:g} {kind} need {need:g} "
                f"{kind}s, and the Ray cluster has {have:g}; lower distribute.workers or "
                f"distribute.{key} (an autoscaling cluster's nodes must be up before the run)")


def parse_address(address):
    """`(host, port)` of a cluster address (`HOST:PORT` or `ray://HOST:PORT`).

    Raises:
        UsageError: naming `distribute.address`.
    """
    client = address.startswith("ray://")
    rest = address[len("ray://"):] if client else address
    host, sep, port = rest.rpartition(":")
    if not sep:
        host, port = rest, str(DEFAULT_CLIENT_PORT if client else DEFAULT_GCS_PORT)
    host = host.strip("[]")
    if (not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536
            or "/" in host):
        raise UsageError(f"distribute.address: must be \"auto\", \"HOST:PORT\" or "
                         f"\"ray://HOST:PORT\", got {address!r}")
    return host, int(port)


_UNSET = "set RAY_ADDRESS to a running cluster's address, or unset it"


def _check_reachable(address, timeout, shown=None):
    host, port = parse_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as e:
        reason = "timed out" if isinstance(e, socket.timeout) else (e.strerror or str(e))
        hint = _UNSET if shown else "start one with `ray start --head`, or use address: auto"
        raise UsageError(f"distribute.address: cannot reach a Ray cluster at "
                         f"{shown or address} ({reason}); {hint}") from None


def _channel(target):
    """A gRPC channel to `target` as Ray opens one (TLS and token
    authentication as configured), or a plain one."""
    import grpc

    try:
        from ray._private.grpc_utils import init_grpc_channel
    except ImportError:  # Another Ray version: its settings are not known here.
        return grpc.insecure_channel(target)
    return init_grpc_channel(target)


def _check_speaks_ray(address, timeout, shown=None):
    """Asks the server at `address` one Ray question within `timeout` seconds:
    the cluster id (a head node's GCS) or a ping (a Ray Client server).

    A port that accepts connections but is not Ray's (another service, or a
    socket that never answers) would make `ray.init` retry forever.

    Args:
        address: `HOST:PORT` or `ray://HOST:PORT`.
        timeout: seconds.
        shown: how the message shows the address (default: `address`).

    Raises:
        UsageError: naming `distribute.address` and what the server did.
    """
    import grpc

    host, port = parse_address(address)
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if address.startswith("ray://"):
        from ray.core.generated import ray_client_pb2 as pb
        from ray.core.generated import ray_client_pb2_grpc as rpc

        def ask(channel):
            rpc.RayletDriverStub(channel).ClusterInfo(
                pb.ClusterInfoRequest(type=pb.ClusterInfoType.PING), timeout=timeout)
    else:
        from ray.core.generated import gcs_service_pb2 as pb
        from ray.core.generated import gcs_service_pb2_grpc as rpc

        def ask(channel):
            rpc.NodeInfoGcsServiceStub(channel).GetClusterId(pb.GetClusterIdRequest(),
                                                             timeout=timeout)
    channel = _channel(target)
    try:
        ask(channel)
    except grpc.RpcError as e:
        code = e.code()
        # A Ray server that wants credentials is a Ray server: `ray.init` says what it wants.
        if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            return
        found = (f"no answer within {timeout:g} s" if code == grpc.StatusCode.DEADLINE_EXCEEDED
                 else code.name.lower().replace("_", " "))
        hint = _UNSET if shown else ("give a head node's GCS address (HOST:6379) or "
                                     "ray://HOST:10001, or use address: auto")
        raise UsageError(f"distribute.address: {shown or address} does not answer as a Ray "
                         f"cluster ({found}); {hint}") from None
    finally:
        channel.close()


def user_error(error):
    """The `KdKerasError` a Ray worker raised, found inside the errors Ray
    wraps it in (`None` when the failure is something else).

    Example:

    >>> try:
    ...     try:
    ...         raise UsageError("x: bad")
    ...     except UsageError as e:
    ...         raise RuntimeError("task failed") from e
    ... except RuntimeError as wrapped:
    ...     print(user_error(wrapped))
    x: bad
    """
    seen, stack = set(), [error]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, KdKerasError):
            return e
        # Ray's wrappers: RayTaskError.cause, Ray Train's worker_failures and
        # UserExceptionWithTraceback (which keeps the error as _base_exc).
        stack += [e.__cause__, e.__context__, getattr(e, "cause", None),
                  getattr(e, "_base_exc", None)]
        failures = getattr(e, "worker_failures", None) or {}
        stack += list(failures.values()) if isinstance(failures, dict) else list(failures)
    return None


def set_threads(threads):
    """Sizes this process's TensorFlow thread pools (call it before
    TensorFlow runs anything; later it changes nothing)."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already ran in this process.
        pass


def connect(cluster, timeout=CONNECT_TIMEOUT_S):
    """Connects this process to `cluster` (see the module doc).

    Args:
        cluster: a `RayCluster`.
        timeout: seconds to wait for a named address to answer.

    Returns:
        The `ray` module, connected.

    Raises:
        MissingDependencyError: Ray is not installed (names
            `pip install "kd_keras[ray]"`).
        UsageError: the address cannot be reached (nothing is written).
    """
    ray = require("ray", EXTRA, "distribute.engine: ray")
    if ray.is_initialized():
        return ray
    with _keeping_sigterm():
        return _init(ray, cluster, timeout)


@contextlib.contextmanager
def _keeping_sigterm():
    """Puts the caller's SIGTERM handler back after `ray.init`, which sets its
    own: under it, `kd-keras distill` aborted on SIGTERM (exit 134, a native
    stack dump) instead of stopping as interrupted."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if main and previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _init(ray, cluster, timeout):
    """`connect`'s `ray.init`, once the process is known not to be connected."""
    quiet = {"logging_level": "ERROR", "log_to_driver": False,
             "configure_logging": True}
    if cluster.address == AUTO:
        named = os.environ.get("RAY_ADDRESS", "").strip()  # What "auto" connects to first.
        if named and named not in (AUTO, "local"):
            shown = f"auto (RAY_ADDRESS={named})"
            _check_reachable(named, timeout, shown)
            _check_speaks_ray(named, timeout, shown)
        try:
            ray.init(address=AUTO, **quiet)
        except ConnectionError:  # No cluster running here: start a local one.
            ray.init(include_dashboard=False, **quiet)
            # Ray counts the CPUs this process may use (a container's quota
            # too). Fewer than the workers reserve: started again with a
            # logical CPU for each, so that the same config runs on a laptop
            # (its workers share the cores).
            need = math.ceil(cluster.workers * cluster.cpus_per_worker)
            if ray.cluster_resources().get("CPU", 0) < need:
                ray.shutdown()
                ray.init(include_dashboard=False, num_cpus=need, **quiet)
        return ray
    _check_reachable(cluster.address, timeout)
    _check_speaks_ray(cluster.address, timeout)
    try:
        ray.init(address=cluster.address, **quiet)
    except (ConnectionError, TimeoutError) as e:
        raise UsageError(f"distribute.address: cannot connect to the Ray cluster at "
                         f"{cluster.address} ({one_line(e)})") from None
    return ray


__all__ = ["AUTO", "RayCluster", "check_fits", "check_settings", "connect", "parse_address",
           "set_threads", "user_error"]
