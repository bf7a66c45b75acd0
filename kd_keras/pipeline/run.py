"""`run_distill(cfg)`: the job behind `kd-keras distill CONFIG.yaml`.

Seven stages, each a module with one entry point:

1. data (`data_stage.prepare_data`), checked before anything is written;
2. teacher adaptation (`teacher_stage.adapt_teacher`);
3. teacher outputs (`teacher_stage.compute_outputs`);
4. distillation and 5. baseline (`training_stage.train_student`);
6. export (`export_stage.export_student`);
7. results (`results_stage.write_results`).

Everything is written into `OUTPUT.partial/`, where each stage records its
completion (`workdir.RunDir`). `OUTPUT` appears, atomically, only when the
run has finished. With `resume=True` the finished stages are skipped, an
interrupted training continues from its last epoch, and the results equal
those of an uninterrupted run; a changed config is refused.
"""

import os
import shutil

import keras
from tqdm.auto import tqdm

import kd_keras
from kd_keras.errors import KdKerasError
from kd_keras.errors import UsageError
from kd_keras.errors import one_line
from kd_keras.files.hashing import sha256_path
from kd_keras.files.json_files import read_json
from kd_keras.files.json_files import write_json
from kd_keras.files.resume import resumed
from kd_keras.pipeline import data_stage
from kd_keras.pipeline import export_stage
from kd_keras.pipeline import results_stage
from kd_keras.pipeline import teacher_stage
from kd_keras.pipeline import training_stage
from kd_keras.pipeline.student_check import check_student_config
from kd_keras.pipeline.workdir import RunDir
from kd_keras.pipeline.workdir import check_inputs_outside
from kd_keras.pipeline.workdir import check_output
from kd_keras.pipeline.workdir import input_paths
from kd_keras.timing import StageTimes

STAGES = ("data", teacher_stage.ADAPTATION, teacher_stage.OUTPUTS, "distill", "baseline",
          export_stage.STAGE, "results")

SECONDS_FILE = "stage_seconds.json"
"""Where a run keeps the wall time of each stage, so that a resumed run
reports the time of both sessions."""


def _read_seconds(path):
    seconds = read_json(path)
    if not (isinstance(seconds, dict) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in seconds.values())):
        raise ValueError(f"{path}: not a dict of seconds")
    return seconds


def _resumed_seconds(run, times):
    """`times` plus what the interrupted run recorded before (`--resume`)."""
    path = run.file(SECONDS_FILE)
    earlier = StageTimes(resumed(path, _read_seconds) if os.path.lexists(path) else None)
    for name, seconds in times.seconds.items():
        earlier.add(name, seconds)
    return earlier


RESUME_INPUTS = ("teacher.model", "teacher.backbone", "student.vocabulary")
"""The input files besides the data whose contents a resumed run checks."""


def _input_digests(cfg):
    """The sha256 of each file or folder of `RESUME_INPUTS` the config names."""
    return {key: sha256_path(path) for key, path in input_paths(cfg)
            if key in RESUME_INPUTS and os.path.exists(path)}


def _source(cfg, split):
    """Where a split's examples come from, for messages: its file, else the
    file (or built-in dataset) it was carved from."""
    d = cfg.data
    if getattr(d, split) is not None:
        return f"data.{split}: {getattr(d, split)}"
    return (f"carved from data.train: {d.train}" if d.train is not None
            else f"data.builtin: {d.builtin}")


def _record_data(run, data, cfg):
    """Records what the run reads (the data's ids, labels and texts; the
    teacher's and vocabulary's files), and refuses a resumed run whose
    inputs changed: its finished stages were computed from the old ones.
    A record without a part (written by an earlier kd_keras) skips it."""
    now = {"split_digests": data.split_digests(), "inputs": _input_digests(cfg)}
    record = run.done("data")
    if record is not None:
        before = record.get("split_digests")
        if isinstance(before, dict):
            changed = [s for s, v in now["split_digests"].items() if before.get(s) != v]
            if changed:
                raise UsageError(
                    f"--resume: the {changed[0]} split changed since the interrupted run "
                    f"({_source(cfg, changed[0])}); run without --resume to start over")
        elif any(record.get(k, v) != v for k, v in (("digest", data.digest()),
                                                    ("texts", data.texts_digest()))):
            # Recorded by an earlier version, which kept one digest of all.
            raise UsageError("--resume: the data changed since the interrupted run; "
                             "run without --resume to start over")
        before = record.get("inputs", now["inputs"])
        if not isinstance(before, dict):
            raise UsageError(f"--resume: {run.file('stages.json')} is damaged; run without "
                             "--resume to start over")
        changed = sorted(k for k in set(before) | set(now["inputs"])
                         if before.get(k) != now["inputs"].get(k))
        if changed:
            raise UsageError(
                f"--resume: {', '.join(changed)} changed since the interrupted run (its "
                "files' contents differ); run without --resume to start over")
    run.finish("data", {**now, "splits": data.dataset.sizes()})


def run_distill(cfg, output=None, resume=False, extra_callbacks=None):
    """Runs a validated config end to end.

    Args:
        cfg: a `kd_keras.config.RunConfig` (`load_config` / `parse_config`).
        output: the output folder (default `cfg.output`).
        resume: continue an interrupted run from `OUTPUT.partial/`.
        extra_callbacks: optional Keras callbacks added to both trainings.

    Returns:
        The `results.json` content as a dict (`RunResults.to_json()`).

    Raises:
        KdKerasError: bad input. A fresh run's partial run is removed
            (resuming would fail the same way); a resumed run's is kept as
            it was, for `--resume` once the input is put right.
        ArtifactsRejected: an exported artifact missed its tolerance; it is
            set aside in `OUTPUT/export/rejected/` and the rest of the run
            is published before this is raised.

    Example:

    ```python
    from kd_keras.config import load_config
    from kd_keras.pipeline import run_distill
    results = run_distill(load_config("configs/demo.yaml"))
    print(results["student"]["accuracy"])
    ```
    """
    output = os.path.abspath(output or cfg.output)
    check_output(output)
    check_inputs_outside(cfg, output)
    # Before any TensorFlow op: MultiWorkerMirroredStrategy configures the
    # collective ops, which TensorFlow allows only at program startup.
    strategy = kd_keras.distribute.get_strategy(cfg.distribute.strategy)
    training_stage.check_strategy(cfg, strategy)
    check_student_config(cfg)
    progress = tqdm(total=len(STAGES), desc="kd-keras distill", unit="stage",
                    disable=not cfg.verbose)
    keras.utils.set_random_seed(cfg.seed)

    def step(name):
        progress.set_postfix_str(name)

    times = StageTimes()
    step("data")
    try:
        if cfg.distribute.engine == "ray":
            # A cluster that is unreachable, or cannot place the workers,
            # fails before any work (not after the teacher's stage).
            from kd_keras.distribute import ray_cluster

            cluster = kd_keras.distribute.RayCluster.from_config(cfg.distribute)
            ray = ray_cluster.connect(cluster)
            ray_cluster.check_fits(ray.cluster_resources(), cluster)
        with times.measure("data"):
            data = data_stage.prepare_data(cfg)
        cfg = data.config  # The default recipe's choices filled in.
        run = RunDir(output, cfg, resume=resume)
    except BaseException:
        progress.leave = False  # An error message starts on a clean line.
        progress.close()
        raise
    finished = False
    try:
        times = _resumed_seconds(run, times)

        def stage(name, work):
            """Runs one stage, timed; its seconds are kept for `--resume`,
            those of a stage interrupted part way included."""
            step(name)
            try:
                with times.measure(name):
                    out = work()
            finally:
                write_json(run.file(SECONDS_FILE), times.to_json())
            progress.update()
            return out

        _record_data(run, data, cfg)
        write_json(run.file(SECONDS_FILE), times.to_json())
        progress.update()
        teacher = stage(teacher_stage.ADAPTATION, lambda: teacher_stage.adapt_teacher(
            cfg, data, run, data_stage.cache_dir(cfg, output)))
        outputs = stage(teacher_stage.OUTPUTS,
                        lambda: teacher_stage.compute_outputs(cfg, data, teacher, run))
        distilled = stage("distill", lambda: training_stage.train_student(
            cfg, data, run, "distill", outputs, strategy, extra_callbacks))
        if cfg.distill.baseline:
            baseline = stage("baseline", lambda: training_stage.train_student(
                cfg, data, run, "baseline", None, strategy, extra_callbacks))
        else:  # Not a stage of this run: no time to show.
            baseline = None
            progress.update()
        report = stage(export_stage.STAGE,
                       lambda: export_stage.export_student(cfg, data, distilled.model, run))
        step("results")
        results = results_stage.write_results(cfg, data, teacher, outputs, distilled,
                                              baseline, report, run, times)
        shutil.rmtree(run.file("backup"), ignore_errors=True)
        finished = True  # A refused publish keeps the finished run for `--resume`.
        run.publish()
    except KdKerasError as e:
        # A fresh run's bad input would fail the same way again: its partial
        # run goes. A resumed one keeps what the interrupted run had done
        # (a trained student, say), to resume once its inputs are restored.
        if finished or resume or run.discard():
            raise
        raise type(e)(f"{one_line(e)} ({run.path} is kept: it holds files the run did not "
                      "write)") from None
    finally:
        run.close()
        if progress.n < len(STAGES) - 1:
            progress.leave = False
            progress.close()
    progress.update()
    progress.close()
    rejected = export_stage.rejection_error(report, output)
    if rejected is not None:  # Raised once the run is published, never discarded.
        raise rejected
    return results.to_json()
