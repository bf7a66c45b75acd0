"""Timing helpers for the benchmarks: per-epoch wall time from a Keras
callback, interleaved rounds, medians and paired ratios.

Example:

    timer = EpochTimer()
    model.fit(x, y, epochs=3, verbose=0, callbacks=[timer])
    summarize({"fit": timer.times[1:]}, num_samples=len(x))
"""

import statistics
import time

import keras
from tqdm import tqdm


class EpochTimer(keras.callbacks.Callback):
    """Records the wall time of each epoch (or predict pass) in `times`, and
    the CPU time of this process (all its threads) in `cpu_times`: other
    jobs on a shared machine stretch the first more than the second."""

    def __init__(self):
        super().__init__()
        self.times = []
        self.cpu_times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._cpu_start = time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)
        self.cpu_times.append(time.process_time() - self._cpu_start)

    on_predict_begin = on_epoch_begin

    def on_predict_end(self, logs=None):
        self.on_epoch_end(0)


def time_methods(methods, rounds):
    """Warms each method up once, then times `rounds` interleaved rounds.

    Every round runs each method once, starting one method further along
    than the round before, so that load changes hit all methods alike.

    Args:
        methods: dict name -> zero-argument function that runs one epoch and
            returns its time in seconds.
        rounds: how many timed rounds.

    Returns:
        `(warmup, times)`: the warm-up time per method, and the list of
        per-round times per method.
    """
    names = list(methods)
    warmup = {}
    for name in tqdm(names, desc="warm-up (tracing)", leave=False):
        warmup[name] = methods[name]()
    times = {name: [] for name in names}
    for r in tqdm(range(rounds), desc="timed rounds", leave=False):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(methods[name]())
    return warmup, times


def median_ratio(numerators, denominators):
    """Median of per-round ratios `numerators[i] / denominators[i]`.

    Args:
        numerators: per-round times of one method.
        denominators: per-round times of another, measured in the same rounds.

    Returns:
        The median ratio (a float).
    """
    return statistics.median(n / d for n, d in zip(numerators, denominators))


def summarize(times, num_samples):
    """Median, min, max and samples/s (from the median) per method.

    Args:
        times: dict name -> list of epoch times in seconds.
        num_samples: examples per epoch.

    Returns:
        dict name -> statistics dict (JSON-serialisable).
    """
    out = {}
    for name, values in times.items():
        median = statistics.median(values)
        out[name] = {
            "epoch_seconds": values,
            "median_seconds": median,
            "min_seconds": min(values),
            "max_seconds": max(values),
            "samples_per_second": num_samples / median,
        }
    return out
