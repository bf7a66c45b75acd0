"""Where a run keeps its teacher's outputs: one teacher cache per split.

Every route to the teacher's logits (an adaptation that labelled every
text, a feature pass, `cache_teacher_outputs`, Ray) ends in the same store,
a `kd_keras.cache.TeacherCache` per split in `OUTPUT.partial/teacher_outputs/
{split}/`, with the features that `distill.features` name beside the
logits. The training reads it through `TeacherCache.as_dataset`, the
dataset builder library users call, streaming a batch at a time, and the
finished run keeps it in `OUTPUT/teacher_outputs/`, ready for
`kd_keras.cache.load`.
"""

import dataclasses
import os

import numpy as np

from kd_keras.cache import load as load_cache
from kd_keras.cache import save_teacher_outputs
from kd_keras.data import SPLITS
from kd_keras.files.resume import resumed

FOLDER = "teacher_outputs"


@dataclasses.dataclass(frozen=True)
class TeacherOutputs:
    """The teacher's outputs for every split of a run.

    Holds folder names, not open files, so it pickles (Ray workers open
    the caches themselves).

    Attributes:
        directories: dict split -> the cache folder, or `None` for an
            empty split.
        num_classes: the width of the logits.
    """

    directories: dict
    num_classes: int

    def cache(self, split):
        """The split's `TeacherCache`, or `None` for an empty split."""
        directory = self.directories[split]
        return None if directory is None else load_cache(directory, verify=False)

    def logits(self, split):
        """The split's float32 logits, `[n, num_classes]` (`n` may be 0)."""
        cache = self.cache(split)
        if cache is None:
            return np.zeros((0, self.num_classes), np.float32)
        return cache.logits()


def store_outputs(folder, inputs, logits, fingerprint, num_classes, features=None,
                  feature_dtype="float32"):
    """Writes the teacher's outputs of every split into a store.

    Args:
        folder: the store's folder (`run.file(FOLDER)` in a run); each
            split's cache goes in `folder/split/`.
        inputs: dict split -> what the teacher read (one row per example).
        logits: dict split -> `[n, num_classes]` floats.
        fingerprint: the teacher's fingerprint.
        num_classes: the width of the logits.
        features: dict split -> `{teacher_layer: [n, ...] array}`, or `None`.
        feature_dtype: how the features are stored.

    Returns:
        A `TeacherOutputs`.
    """
    directories = {}
    for split in SPLITS:
        if len(logits[split]) == 0:
            directories[split] = None
            continue
        directories[split] = os.path.join(folder, split)
        save_teacher_outputs(directories[split], inputs[split], logits[split], fingerprint,
                             features=(features or {}).get(split),
                             feature_dtype=feature_dtype)
    return TeacherOutputs(directories, int(num_classes))


def resumed_outputs(folder, sizes, num_classes):
    """The store an interrupted run wrote, checked shard by shard.

    Args:
        folder: the store's folder.
        sizes: dict split -> its number of examples.
        num_classes: the width of the logits.

    Returns:
        A `TeacherOutputs`.

    Raises:
        UsageError: a split's cache is missing or damaged (`--resume`).
    """
    def load_fitting(directory, count):
        cache = load_cache(directory)
        if cache.count != count or cache.num_classes != num_classes:
            raise ValueError(f"{directory}: does not fit the data")
        return cache

    directories = {}
    for split in SPLITS:
        directory = os.path.join(folder, split) if sizes[split] else None
        if directory is not None:
            resumed(directory, lambda d, n=sizes[split]: load_fitting(d, n))
        directories[split] = directory
    return TeacherOutputs(directories, int(num_classes))
