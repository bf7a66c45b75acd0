"""The default recipe: what `kd-keras distill` chooses for the keys a config
leaves out.

A config that names only its data and its teacher gets the student, the
terms and the transfer set that the ablation measured best, chosen by one
rule from what the run can see (a `DataProfile`), never by dataset:

1. `student.architecture`: `dilated_cnn`, the text CNN with dilated
   convolutions (it beat the text CNN on each seed with the copies, and on
   SST-2 with few labels and no copies).
2. `student.sequence_length`: the teacher's, halved while 99% of the
   training texts still fit whole (never below `MIN_SEQUENCE_LENGTH`): ids
   past the longest texts are padding, which costs time and teaches nothing.
   A ready `teacher.model` keeps `teacher.sequence_length` whole: one that
   reads ids reads the student's, so both lengths must be the same.
3. `distill.features`: the teacher's pooled sentence vector, taught with a
   cosine loss, when the teacher is a backbone that kd_keras adapts (a ready
   `teacher.model` has layers kd_keras cannot name, so it teaches logits).
4. `distill.augment.copies`: enough teacher-labelled copies of each training
   text (labelled or not) to reach about `TRANSFER_ROWS` rows, at most
   `MAX_COPIES`; none once the texts alone pass half of that. The teacher
   labels at most about `TRANSFER_ROWS` texts, whatever the data.
5. `distill.augment.replace_prob`: 0.3 with a backbone teacher (words are
   replaced by their neighbours in its embeddings), else 0.

The number of classes does not enter the rule: the measured gains held for
2 and 4 classes alike. A key the config sets is never changed. The fixed
parts of the recipe (10 epochs, patience 3, temperature 1, alpha 0.1) are
the schema's defaults.

Example:

>>> profile = DataProfile(labelled=8530, unlabelled=0, num_classes=2,
...                       covered_length=55)
>>> for choice in default_recipe(profile, TeacherConfig(backbone="minilm")):
...     print(choice.key, choice.shown)
student.architecture dilated_cnn
student.sequence_length 64
distill.features classifier/pooling -> features (cosine)
distill.augment.copies 10
distill.augment.replace_prob 0.3
"""

import dataclasses

from kd_keras.config.schema import FeatureTermConfig
from kd_keras.config.schema import TeacherConfig  # noqa: F401 (the doctest's)

STUDENT = "dilated_cnn"
"""The default student architecture."""
TRANSFER_ROWS = 100_000
"""About how many rows (texts and their copies) the copies bring a run to."""
MAX_COPIES = 10
"""The most copies of each text the default makes."""
COVERED = 0.99
"""The share of training texts the default sequence length keeps whole."""
MIN_SEQUENCE_LENGTH = 16
"""The shortest default student sequence length."""
REPLACE_PROB = 0.3
"""The default probability of replacing a word by an embedding neighbour."""
POOLED_TERM = FeatureTermConfig(teacher_layer="classifier/pooling", student_layer="features",
                                loss="cosine", weight=1.0)
"""The default feature term: the teacher's pooled sentence vector."""


@dataclasses.dataclass(frozen=True)
class DataProfile:
    """What the default recipe may look at.

    Attributes:
        labelled: labelled training texts.
        unlabelled: unlabelled training texts (transfer data).
        num_classes: the number of classes.
        covered_length: the length, in the teacher's WordPiece ids
            (`[CLS]` and `[SEP]` included, cut at the teacher's sequence
            length), that `COVERED` of the training texts fit in.
    """

    labelled: int
    unlabelled: int
    num_classes: int
    covered_length: int

    @property
    def texts(self):
        """All the training texts, labelled or not."""
        return self.labelled + self.unlabelled


@dataclasses.dataclass(frozen=True)
class Choice:
    """One key the default recipe sets, its value, and why."""

    key: str
    value: object
    reason: str

    def to_json(self):
        """The choice as `results.json` records it: key, value, how it is
        shown, and why."""
        value = self.value
        if isinstance(value, tuple):
            value = [dataclasses.asdict(v) for v in value]
        return {"key": self.key, "value": value, "shown": self.shown, "reason": self.reason}

    @property
    def shown(self):
        """The value as the run prints it (feature terms as `teacher ->
        student (loss)`)."""
        if isinstance(self.value, tuple):
            return ", ".join(f"{t.teacher_layer} -> {t.student_layer} ({t.loss})"
                             for t in self.value) or "none"
        return str(self.value)

    def __str__(self):
        return f"{self.key} = {self.shown} ({self.reason})"


def default_copies(texts):
    """Teacher-labelled copies per training text for a run with `texts`
    training texts (rule 4).

    Example:

    >>> default_copies(8530), default_copies(20_000), default_copies(60_614)
    (10, 4, 0)
    """
    return max(0, min(MAX_COPIES, TRANSFER_ROWS // max(texts, 1) - 1))


def default_sequence_length(teacher_length, covered_length):
    """The student's sequence length (rule 2): the teacher's, halved while
    the texts' `covered_length` still fits.

    Example:

    >>> default_sequence_length(64, 55), default_sequence_length(64, 30)
    (64, 32)
    >>> default_sequence_length(128, 9)
    16
    """
    length = teacher_length
    while length // 2 >= max(covered_length, MIN_SEQUENCE_LENGTH):
        length //= 2
    return length


def default_recipe(profile, teacher):
    """Every choice of the default recipe for a run.

    Args:
        profile: the run's `DataProfile`.
        teacher: its `TeacherConfig`.

    Returns:
        A tuple of `Choice`, one per key the recipe can set.
    """
    backbone = teacher.backbone is not None
    copies = default_copies(profile.texts)
    if backbone:
        length = default_sequence_length(teacher.sequence_length, profile.covered_length)
        why = (f"{COVERED:.0%} of the training texts fit in {profile.covered_length} ids; "
               f"the teacher reads {teacher.sequence_length}")
    else:
        length = teacher.sequence_length
        why = "teacher.sequence_length: a ready teacher.model may read the student's ids"
    return (
        Choice("student.architecture", STUDENT, "beat the text CNN on each seed"),
        Choice("student.sequence_length", length, why),
        Choice("distill.features", (POOLED_TERM,) if backbone else (),
               "the adapted backbone's sentence vector" if backbone
               else "a ready teacher.model: logits only"),
        Choice("distill.augment.copies", copies,
               f"{profile.texts} training texts, {profile.texts * (copies + 1)} rows with the "
               f"copies; the rule aims at about {TRANSFER_ROWS} rows, at most {MAX_COPIES} "
               "copies a text"),
        Choice("distill.augment.replace_prob", REPLACE_PROB if backbone else 0.0,
               "neighbours in the teacher's word embeddings" if backbone
               else "no backbone embeddings to find neighbours in"),
    )


def unset_keys(cfg):
    """The recipe's keys that `cfg` leaves to it (`None`).

    `distill.augment.replace_prob` counts only when there may be copies: with
    `copies: 0` there is nothing to perturb."""
    values = {"student.architecture": cfg.student.architecture,
              "student.sequence_length": cfg.student.sequence_length,
              "distill.features": cfg.distill.features,
              "distill.augment.copies": cfg.distill.augment.copies,
              "distill.augment.replace_prob": cfg.distill.augment.replace_prob}
    if cfg.distill.augment.copies == 0:
        del values["distill.augment.replace_prob"]
    return [key for key, value in values.items() if value is None]


def complete_config(cfg, profile):
    """`cfg` with every key it leaves unset chosen by the default recipe.

    Args:
        cfg: a validated `RunConfig`.
        profile: the `DataProfile` of its data.

    Returns:
        `(config, choices)`: the complete `RunConfig` and the `Choice`s
        applied (the keys the config set are not among them).
    """
    unset = set(unset_keys(cfg))
    choices = tuple(c for c in default_recipe(profile, cfg.teacher) if c.key in unset)
    picked = {c.key: c.value for c in choices}
    if picked.get("distill.augment.copies", cfg.distill.augment.copies) == 0:
        # No copies to perturb: the word replacement is moot, and not shown.
        choices = tuple(c for c in choices if c.key != "distill.augment.replace_prob")
        if "distill.augment.replace_prob" in picked:
            picked["distill.augment.replace_prob"] = 0.0
    student = {k.split(".")[1]: v for k, v in picked.items() if k.startswith("student.")}
    augment = {k.split(".")[2]: v for k, v in picked.items() if k.startswith("distill.augment.")}
    distill = {}
    if "distill.features" in picked:
        distill["features"] = picked["distill.features"]
    if augment:
        distill["augment"] = dataclasses.replace(cfg.distill.augment, **augment)
    return cfg.replace(student=dataclasses.replace(cfg.student, **student),
                       distill=dataclasses.replace(cfg.distill, **distill)), choices
