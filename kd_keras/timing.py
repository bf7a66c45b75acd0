"""Wall-clock timing: the one owner of stage times and latency measurements.

`StageTimes` adds up the seconds a job spends in each named part (the
stages of `kd-keras distill`, the steps of an export), so a run can say
where its time went. `time_calls` times repeated calls of one function, for
the latency figures of the reports; it stops at a count or a time budget,
whichever comes first, so a slow artifact never stalls an export.
"""

import contextlib
import time

import numpy as np


class StageTimes:
    """Seconds spent per named part of a job, in the order first measured.

    Args:
        seconds: optional dict name -> seconds to start from (e.g. the
            stages an interrupted run already finished).

    Example:

    >>> times = StageTimes()
    >>> with times.measure("data"):
    ...     pass
    >>> times.add("data", 1.5)
    >>> list(times.to_json()), times.to_json()["data"] >= 1.5
    (['data'], True)
    """

    def __init__(self, seconds=None):
        self.seconds = {str(k): float(v) for k, v in (seconds or {}).items()}

    @contextlib.contextmanager
    def measure(self, name):
        """Adds the wall time of the `with` block to `name` (also when it
        raises)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name, seconds):
        """Adds `seconds` to `name`."""
        self.seconds[name] = self.seconds.get(name, 0.0) + float(seconds)

    @property
    def total(self):
        """The sum over every part, in seconds."""
        return float(sum(self.seconds.values()))

    def to_json(self):
        """dict name -> seconds, rounded to milliseconds."""
        return {name: round(value, 3) for name, value in self.seconds.items()}


def time_calls(call, runs, max_seconds=None, warmup=1):
    """Times `call()` up to `runs` times, stopping early once `max_seconds`
    of timed calls have passed (at least one call is always timed).

    Args:
        call: a function of no arguments.
        runs: the most timed calls (0 times nothing).
        max_seconds: optional budget for the timed calls, in seconds.
        warmup: untimed calls first (tracing, caches).

    Returns:
        A float64 array of the calls' durations in milliseconds.

    Example:

    >>> ms = time_calls(lambda: None, runs=5)
    >>> len(ms), bool((ms >= 0).all())
    (5, True)
    >>> len(time_calls(lambda: time.sleep(0.01), runs=1000, max_seconds=0.05)) < 1000
    True
    """
    if runs <= 0:
        return np.zeros((0,), np.float64)
    for _ in range(warmup):
        call()
    times = []
    budget_start = time.perf_counter()
    for _ in range(runs):
        start = time.perf_counter()
        call()
        end = time.perf_counter()
        times.append(1000.0 * (end - start))
        if max_seconds is not None and end - budget_start >= max_seconds:
            break
    return np.asarray(times, np.float64)
