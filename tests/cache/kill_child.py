"""Builds a cache slowly so the test can SIGKILL it mid-build.

Usage: python kill_child.py CACHE_DIR
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cache_helpers import LinearTeacher  # noqa: E402
from cache_helpers import make_inputs  # noqa: E402

from kd_keras.cache import cache_teacher_outputs  # noqa: E402

if __name__ == "__main__":
    cache_teacher_outputs(
        LinearTeacher(delay=0.1),
        make_inputs(),
        sys.argv[1],
        batch_size=16,
        shard_size=32,
        verbose=0,
    )
