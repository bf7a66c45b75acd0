"""The working folder of a run, `OUTPUT.partial/`, and its publication.

A run writes everything into `OUTPUT.partial/`. Each stage records its
completion there (`stages.json`, with the sha256 of the files later stages
read), with the config it ran under (`config.json`), so `--resume` skips
finished stages and refuses a changed config or a stage file changed since.
When the last stage is done, the folder is renamed to `OUTPUT`.

kd_keras only deletes or replaces what it wrote itself: a published run
lists its files in its marker file `MARKER` (`kd_keras.files.ownership`). An
`OUTPUT` that exists without it (a user's folder, a file), that holds a
file the marker does not list, or that is a symlink is refused before any
work, and never touched; so is a config whose inputs (data, teacher,
vocabulary, cache) lie inside the `OUTPUT` it would replace.

`OUTPUT.partial/` keeps the same record: its marker lists its files when
the run opens it, after each stage and when the run stops, interrupted or
failed, but only those under the names the stages write (`RUN_ENTRIES`),
so a user's notes are never claimed. `--resume` refuses a symlink or
other special file anywhere in it, and a file under `backup/` that
training does not write (`BACKUP_FILES`). A run without `--resume` starts over
by deleting an interrupted `OUTPUT.partial/` only when it holds nothing
else; a file added since stops it with one line, and the folder is left
as it is.
"""

import dataclasses
import fnmatch
import os
import shutil
import stat
import sys
import time

from kd_keras.config import changed_keys
from kd_keras.config import header_resolved
from kd_keras.config import RunConfig
from kd_keras.config import to_dict
from kd_keras.errors import ConfigError
from kd_keras.errors import KdKerasError
from kd_keras.errors import UsageError
from kd_keras.errors import first_of
from kd_keras.files.atomic import remove_leftovers
from kd_keras.files.hashing import sha256_path
from kd_keras.files.json_files import read_json
from kd_keras.files.json_files import write_json
from kd_keras.files.lock import acquire_lock
from kd_keras.files.lock import release_lock
from kd_keras.files.ownership import check_replaceable
from kd_keras.files.ownership import foreign_files
from kd_keras.files.ownership import write_marker
from kd_keras.files.paths import check_writable_name

MARKER = ".kd_keras_run"
STAGES_FILE = "stages.json"
CONFIG_FILE = "config.json"
# Keys that do not change what a run computes.
_NOT_FINGERPRINTED = ("verbose", "output")


RUN_ENTRIES = ("config.json", STAGES_FILE, "stage_seconds.json", "teacher.weights.h5",
               "teacher_outputs", "backup", "logs", "student.keras",
               "student_without_distillation.keras", "history*.json", "export", "export.lock",
               "vocab.txt", "results.json", "training_curves.png")
"""The names (`fnmatch` patterns) the stages write at the top of a run's
folder; `tests/pipeline/test_workdir.py` checks them against full runs."""

BACKUP_FILES = ("backup/*/latest.weights.h5", "backup/*/training_metadata.json",
                "backup/*-early-stopping/early_stopping.json",
                "backup/*-early-stopping/best-*.npz", "backup/*-ray/*")
"""What training writes under `backup/` (Keras's `BackupAndRestore`, the
early stopping's state, Ray Train's checkpoints): a resumed run takes these
as the interrupted run's last epoch, and refuses anything else there, which
`BackupAndRestore` would delete when training ends."""

_SPECIAL = ((stat.S_ISLNK, "a symlink"), (stat.S_ISFIFO, "a FIFO"),
            (stat.S_ISSOCK, "a socket"), (stat.S_ISBLK, "a device"), (stat.S_ISCHR, "a device"))


FILES_KEY = "sha256"
"""The key of a stage record that holds its files' digests."""


def _digest(path):
    """The sha256 of a file or folder, or None when it is gone."""
    try:
        return sha256_path(path)
    except (OSError, KdKerasError):
        return None


def _run_entry(relative_path):
    """True when `relative_path` lies under a name of `RUN_ENTRIES`."""
    top = relative_path.split("/", 1)[0]
    return any(fnmatch.fnmatchcase(top, pattern) for pattern in RUN_ENTRIES)


def is_run_folder(path):
    """True when `path` is a folder that kd_keras wrote (it has the marker)."""
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, MARKER))


def _fingerprint(cfg):
    # `data.header` as read: an unset header and the `false` that earlier
    # versions wrote for it are the same run.
    content = to_dict(dataclasses.replace(cfg, data=header_resolved(cfg.data)))
    for key in _NOT_FINGERPRINTED:
        content.pop(key, None)
    return content


def _added_at_its_default(key, old, new):
    """True when dotted `key` is missing from `old` (written by a kd_keras
    that did not have it yet) and `new` holds the schema's default for it:
    a run from before a config key existed resumes as long as the key keeps
    its default.

    Example:

    >>> _added_at_its_default("distill.feature_dtype", {"distill": {}},
    ...                       {"distill": {"feature_dtype": "float32"}})
    True
    >>> _added_at_its_default("distill.feature_dtype", {"distill": {}},
    ...                       {"distill": {"feature_dtype": "float16"}})
    False
    """
    *sections, last = key.split(".")
    cls = RunConfig
    for part in sections:  # down the nested sections' dataclasses
        factory = getattr(_field(cls, part), "default_factory", None)
        if not dataclasses.is_dataclass(factory):
            return False
        cls, old, new = factory, old.get(part), new.get(part)
        if not isinstance(old, dict) or not isinstance(new, dict):
            return False
    field = _field(cls, last)
    return (last not in old and field is not None
            and field.default is not dataclasses.MISSING and new.get(last) == field.default)


def _field(cls, name):
    """The dataclass field `name` of `cls`, or `None`."""
    return next((f for f in dataclasses.fields(cls) if f.name == name), None)


def check_output(output):
    """Refuses an `OUTPUT` that kd_keras may not replace.

    Raises:
        UsageError: `output` is a file, a symlink, a folder that is not a
            kd_keras run, or a run holding a file kd_keras did not write.
    """
    check_writable_name(output, "output")
    check_replaceable(output, MARKER, "output")
    partial = f"{output}.partial"
    if os.path.islink(partial):
        raise UsageError(f"output: {partial} is a symlink, not a kd_keras run; remove it "
                         "yourself")
    parent = os.path.dirname(output) or "."
    while not os.path.lexists(parent) and os.path.dirname(parent) != parent:
        parent = os.path.dirname(parent)  # The nearest folder that exists.
    if not os.path.isdir(parent):
        raise UsageError(f"output: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"output: cannot write in {parent} (permission denied)")


def input_paths(cfg):
    """`(config key, path)` of every input file or folder a config names.

    Example:

    >>> import kd_keras.config as c
    >>> input_paths(c.RunConfig(data=c.DataConfig(train="t.tsv")))
    [('data.train', 't.tsv')]
    """
    paths = [(f"data.{k}", getattr(cfg.data, k)) for k in ("train", "validation", "test")]
    paths += [("teacher.model", cfg.teacher.model), ("student.vocabulary", cfg.student.vocabulary),
              ("distill.cache_dir", cfg.distill.cache_dir)]
    backbone = cfg.teacher.backbone
    if backbone is not None and os.path.exists(backbone):
        paths.append(("teacher.backbone", backbone))
    return [(key, path) for key, path in paths if path is not None]


def _inside(path, folder):
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_inputs_outside(cfg, output):
    """Refuses a config whose inputs lie inside the run it would replace:
    publishing the new run would delete them (a second-round distillation
    from `OUTPUT/student.keras` into the same `OUTPUT`, say).

    Raises:
        UsageError: naming the key, the input and `output`.
    """
    for key, path in input_paths(cfg):
        for folder in (output, f"{output}.partial"):
            if _inside(path, folder):
                raise UsageError(
                    f"{key}: {path} lies inside {folder}, which this run replaces; copy "
                    "it elsewhere or choose another output")


class RunDir:
    """`OUTPUT.partial/`: stage records, config fingerprint, publication.

    Args:
        output: the final output folder (absolute).
        cfg: the run's `RunConfig`.
        resume: reuse an existing `OUTPUT.partial/` (same config only).

    Example:

    >>> import tempfile, kd_keras.config as c
    >>> out = os.path.join(tempfile.mkdtemp(), "run")
    >>> run = RunDir(out, c.RunConfig(), resume=False)
    >>> run.done("data"), run.finish("data", {"n": 3}), run.done("data")
    (None, None, {'n': 3})
    >>> run.publish(); sorted(os.listdir(out))
    ['.kd_keras_run', 'config.json', 'stages.json']
    """

    def __init__(self, output, cfg, resume=False):
        self.output = output
        self.path = f"{output}.partial"
        self._checked = set()  # Stages whose recorded files were checked.
        # Unrecorded files a resume found: claimed once it is accepted.
        self._pending = set()
        check_output(output)
        acquire_lock(output)
        try:
            self._open(cfg, resume)
        except BaseException:
            release_lock(output)
            raise

    def _open(self, cfg, resume):
        fingerprint = _fingerprint(cfg)
        if os.path.lexists(self.path) and (os.path.islink(self.path)
                                           or not is_run_folder(self.path)):
            raise UsageError(f"output: {self.path} exists and is not a kd_keras run; "
                             "remove it yourself")
        if resume:
            if not is_run_folder(self.path):
                done = (f" (the run at {self.output} is finished)"
                        if is_run_folder(self.output) else "")
                raise UsageError(f"--resume: no interrupted run to resume at {self.path}{done}")
            self._check_resumable()
            self._check_same_config(fingerprint)
            remove_leftovers(self.path)  # the killed run's half-written files
            # What its record lacks under the names the stages write is the
            # killed run's last work, recorded once the resume is accepted
            # (`done`); anything else (a user's notes) never is (`RUN_ENTRIES`).
            self._pending = set(foreign_files(self.path, MARKER) or ())
        elif os.path.lexists(self.path):
            self._check_only_ours()
            if cfg.verbose:  # Minutes of work go: say so, and how to keep them.
                print(f"starting over: the interrupted run in {self.path} is removed "
                      f"({self._progress_shown()}); --resume continues it instead",
                      file=sys.stderr)
            shutil.rmtree(self.path)
        os.makedirs(self.path, exist_ok=True)
        write_json(os.path.join(self.path, CONFIG_FILE), fingerprint)
        stages = os.path.join(self.path, STAGES_FILE)
        self._stages = self._read_stages(stages) if resume and os.path.lexists(stages) else {}
        self._record()

    def _check_resumable(self):
        """Refuses to resume on what kd_keras never writes in a run: a
        symlink or other special file anywhere (followed, a `backup` link
        would let training delete a folder elsewhere), or a file under
        `backup/` that training does not write (`BACKUP_FILES`)."""
        for root, dirs, names in os.walk(self.path):
            for name in dirs + names:
                path = os.path.join(root, name)
                rel = os.path.relpath(path, self.path).replace(os.sep, "/")
                mode = os.lstat(path).st_mode
                kind = next((kind for test, kind in _SPECIAL if test(mode)), None)
                if kind is not None:
                    raise UsageError(f"--resume: {self.path} holds {rel}, {kind}, which "
                                     "kd_keras never writes; remove it yourself to resume")
                if (rel.startswith("backup/") and stat.S_ISREG(mode)
                        and not any(fnmatch.fnmatchcase(rel, p) for p in BACKUP_FILES)):
                    raise UsageError(f"--resume: {self.path} holds {rel}, which the "
                                     "interrupted run did not write; move it out to resume")

    def _progress_shown(self):
        """What an interrupted run had finished, for the starting-over line."""
        try:
            stages = read_json(self.file(STAGES_FILE))
        except (OSError, ValueError, RecursionError):
            stages = None
        if not isinstance(stages, dict) or not stages:
            return "no stage finished"
        return f"finished: {', '.join(map(str, stages))}"

    def _record(self):
        """Lists every file of the run now in `OUTPUT.partial/` in its marker,
        except what a resume found unrecorded while it is not yet accepted."""
        write_marker(self.path, MARKER, {"kd_keras_run": 1},
                     keep=lambda rel: _run_entry(rel) and rel not in self._pending)

    def _check_only_ours(self):
        """Refuses to start over on an interrupted run that holds a file
        its record does not list (or that changed since)."""
        foreign = foreign_files(self.path, MARKER)
        if foreign is None:
            raise UsageError(
                f"output: {self.path} is an interrupted run with no record of its files "
                "(an earlier kd_keras wrote it); continue it with --resume, or remove it "
                "yourself to start over")
        if foreign:  # Added files come first: they are the likelier surprise.
            raise UsageError(
                f"output: {self.path} holds {first_of(foreign)}, which the interrupted run "
                "did not record (added or changed since it stopped); continue it with "
                "--resume, or move that out or remove the folder yourself to start over")

    @staticmethod
    def _read_stages(path):
        try:
            stages = read_json(path)
        except (OSError, ValueError, RecursionError):
            stages = None
        if not isinstance(stages, dict) or not all(
                isinstance(v, dict) for v in stages.values()):
            raise UsageError(f"--resume: {path} is damaged; run without --resume to start over")
        return stages

    def _check_same_config(self, fingerprint):
        try:
            old = read_json(os.path.join(self.path, CONFIG_FILE))
        except (OSError, ValueError):
            raise UsageError(f"--resume: {self.path}/{CONFIG_FILE} is missing or damaged; "
                             "run without --resume to start over") from None
        changed = [k for k in changed_keys(old, fingerprint)
                   if not _added_at_its_default(k, old, fingerprint)]
        if changed:
            raise ConfigError(
                f"--resume: the config changed since the interrupted run ({', '.join(changed)}); "
                "run without --resume to start over")

    def file(self, *parts):
        """A path inside `OUTPUT.partial/`."""
        return os.path.join(self.path, *parts)

    def done(self, stage):
        """The record a finished stage left, or `None` when it has not run.

        The files the stage recorded (`finish(..., files=...)`) are checked
        first, once: a resumed run never reads one that was deleted, edited
        or replaced since (another run's `student.keras`, say).

        Raises:
            UsageError: a recorded file is missing or changed.
        """
        record = self._stages.get(stage)
        if record is None:  # New work begins: what came before was checked.
            self._pending = set()
        if record is not None and stage not in self._checked:
            digests = record.get(FILES_KEY, {})
            if not isinstance(digests, dict):
                raise UsageError(f"--resume: {self.file(STAGES_FILE)} is damaged; run "
                                 "without --resume to start over")
            for rel, digest in sorted(digests.items()):
                path = self.file(*str(rel).split("/"))
                if not _inside(path, self.path) or _digest(path) != digest:
                    raise UsageError(
                        f"--resume: {path} is missing or changed since its stage finished; "
                        "run without --resume to start over")
            self._checked.add(stage)
        return record

    def finish(self, stage, record=None, files=()):
        """Records that `stage` finished (with an optional JSON record).

        Args:
            stage: the stage's name.
            record: a JSON-ready dict the later stages (and `--resume`) read.
            files: paths relative to the run's folder that the stage wrote
                and later stages read; their sha256 is recorded and checked
                by `done` when the run resumes.
        """
        record = dict(record or {})
        if files:
            # The stage wrote them: a missing one is a bug, not a None to match.
            record[FILES_KEY] = {rel: sha256_path(self.file(rel)) for rel in files}
        self._stages[stage] = record
        self._checked.add(stage)
        write_json(self.file(STAGES_FILE), self._stages)
        self._record()

    def publish(self):
        """Renames `OUTPUT.partial/` to `OUTPUT`, replacing an earlier run.

        The marker records every file of the new run. An earlier run at
        `OUTPUT` is first renamed aside, then deleted once the new one is in
        place; anything else at `OUTPUT`, or a file that appeared in the
        earlier run since it was published, is refused and the finished
        run stays in `OUTPUT.partial/` (`--resume` publishes it).
        """
        write_marker(self.path, MARKER, {"kd_keras_run": 1}, keep=_run_entry)
        try:
            check_output(self.output)
        except UsageError as e:
            raise UsageError(f"{e}; the finished run waits in {self.path}: run again with "
                             "--resume to publish it") from None
        old = None
        if os.path.lexists(self.output):
            old = f"{self.output}.old-{os.getpid()}-{int(time.time())}"
            os.replace(self.output, old)
        os.replace(self.path, self.output)
        if old is not None and is_run_folder(old):
            shutil.rmtree(old, ignore_errors=True)
        elif old is not None:
            try:  # The empty folder `check_output` let through.
                os.rmdir(old)
            except OSError:
                pass

    def discard(self):
        """Removes `OUTPUT.partial/` of a failed run that cannot be resumed.

        Files its record lacks are the failed stage's when they lie under a
        name the stages write (`RUN_ENTRIES`). Anything else (a user's
        notes) keeps the folder as it is, for its owner to sort out.

        Returns:
            True when the folder was removed.
        """
        if not is_run_folder(self.path):
            return False
        foreign = foreign_files(self.path, MARKER)
        if foreign is None or any(not _run_entry(rel) for rel in foreign):
            return False
        shutil.rmtree(self.path, ignore_errors=True)
        return True

    def close(self):
        """Records the files of a run that stops unfinished (so that a run
        without `--resume` may start over on them), then releases the run's
        lock (`OUTPUT.lock`)."""
        try:
            if is_run_folder(self.path):
                self._record()
        finally:
            release_lock(self.output)
