"""The student, checked before any work: a bad `student.architecture`, a
`student.options` value the builder refuses, or a `distill.features` term
that names no layer of the student stops `kd-keras distill` with one line
before the data stage, instead of after the teacher's adaptation.

The check builds the configured student once on a tiny vocabulary
(`CHECK_VOCABULARY`), without the options that read files or a teacher
(`embedding_init`), and resolves each feature term's `student_layer` in it.
An unset architecture or feature term is the default recipe's.

Example:

>>> from kd_keras.config import parse_config
>>> cfg = parse_config({"data": {"builtin": "rt_polarity"},
...                     "teacher": {"backbone": "minilm"},
...                     "student": {"options": {"filters": 0}}})
>>> check_student_config(cfg)
Traceback (most recent call last):
...
kd_keras.errors.ConfigError: student.options.filters: must be a positive integer, got 0
"""

import dataclasses

from kd_keras.config.recipe import POOLED_TERM
from kd_keras.config.recipe import STUDENT
from kd_keras.distillation.feature_views import resolve
from kd_keras.errors import ConfigError
from kd_keras.errors import UsageError
from kd_keras.errors import one_line
from kd_keras.pipeline.training_stage import configured_student

CHECK_VOCABULARY = 64
"""The vocabulary size of the student built for the check."""
_READS_FILES = ("embedding_init",)


def check_student_config(cfg):
    """Builds the configured student once, to refuse its bad keys early.

    Args:
        cfg: a validated `RunConfig` (the recipe's keys may be unset).

    Returns:
        None.

    Raises:
        ConfigError: naming the key: an image or unknown architecture, an
            option value the builder refuses, or a feature term's
            `student_layer` that the student does not have.
    """
    s = cfg.student
    student = dataclasses.replace(
        s, architecture=s.architecture or STUDENT, prune_vocabulary=False,
        options={k: v for k, v in s.options.items() if k not in _READS_FILES})
    model = configured_student(cfg.replace(student=student), 2, CHECK_VOCABULARY)
    terms = cfg.distill.features
    if terms is None:  # The recipe's: the pooled term for a backbone teacher.
        terms = (POOLED_TERM,) if cfg.teacher.backbone is not None else ()
    for i, term in enumerate(terms):
        key = f"distill.features[{i}].student_layer"
        try:
            resolve(model, term.student_layer, key)
        except UsageError as e:
            raise ConfigError(one_line(e)) from None
