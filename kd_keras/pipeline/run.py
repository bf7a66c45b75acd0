"""`run_distill(cfg)`: data -> teacher -> cache -> Distiller -> baseline ->
export -> `results.json`, the job behind `kd-keras distill CONFIG.yaml`.

Everything is written into `OUTPUT.partial/` and renamed to `OUTPUT` only
when the run has finished, so `OUTPUT` is never half-written. An
interrupted run leaves `OUTPUT.partial/` (with its `backup/` checkpoints and
logit caches) for `--resume`; a run without `--resume` starts it afresh.
"""

import json
import os
import shutil
import time

import keras
import numpy as np
from tqdm.auto import tqdm

import kd_keras
from kd_keras.data import SPLITS
from kd_keras.data import WordPieceEncoder
from kd_keras.data import load_builtin
from kd_keras.data import load_text_dataset
from kd_keras.data import with_augmented_train
from kd_keras.data import word_neighbors
from kd_keras.pipeline import report
from kd_keras.pipeline import teacher_stage
from kd_keras.pipeline import training


def load_data(cfg):
    """The configured `TextDataset`: the few-label mask applied, and the
    `distill.augment` copies of the training texts added, unlabeled."""
    d = cfg["data"]
    if d["builtin"] is not None:
        data = load_builtin(d["builtin"], max_examples=d["max_examples"], seed=cfg["seed"],
                            split=tuple(d["split"]))
    else:
        data = load_text_dataset(
            d["train"], test=d["test"], validation=d["validation"], format=d["format"],
            header=d["header"], text_column=d["text_column"],
            label_column=d["label_column"], labels=d["labels"],
            max_examples=d["max_examples"], split=tuple(d["split"]), seed=cfg["seed"])
    if d["labels_fraction"] < 1:
        data = data.with_label_fraction(d["labels_fraction"], seed=cfg["seed"])
    augment = dict(cfg["distill"]["augment"])
    if augment["copies"]:
        if augment["replace_prob"] > 0:
            augment["neighbors"] = _teacher_neighbors(cfg, data.texts["train"])
        data = with_augmented_train(data, seed=cfg["seed"], **augment)
    return data


def _teacher_neighbors(cfg, texts):
    """Nearest words, in the teacher backbone's word embeddings, of the
    words in `texts` (for `distill.augment.replace_prob`)."""
    vocabulary, embeddings = kd_keras.teachers.word_embeddings(
        teacher_stage.resolve_backbone(cfg["teacher"]["backbone"]))
    words = {w for text in texts for w in str(text).split()}
    return word_neighbors(vocabulary, embeddings, words=words)


def vocabulary_path(cfg):
    """The WordPiece vocabulary the student's ids come from."""
    if cfg["student"]["vocabulary"]:
        return cfg["student"]["vocabulary"]
    backbone = cfg["teacher"]["backbone"]
    if backbone is not None:
        path = os.path.join(teacher_stage.resolve_backbone(backbone), "vocab.txt")
        if os.path.isfile(path):
            return path
    default = teacher_stage.minilm_dir()
    if default is None:
        raise FileNotFoundError(
            "student.vocabulary: no vocab.txt given and all-MiniLM-L6-v2 (the "
            "default vocabulary) is not installed")
    return os.path.join(default, "vocab.txt")


def _atomic_json(path, content):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(content, f, indent=2)
    os.replace(tmp, path)


def _publish(work_dir, output):
    """Moves the finished run into place (replacing an older run)."""
    old = None
    if os.path.exists(output):
        old = f"{output}.old-{int(time.time())}"
        os.replace(output, old)
    os.replace(work_dir, output)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def _fix_export_paths(export_report, work_dir, output):
    text = json.dumps(export_report).replace(work_dir, output)
    return json.loads(text)


def run_distill(cfg, output=None, resume=False, extra_callbacks=None):
    """Runs a validated config end to end.

    Args:
        cfg: a config from `kd_keras.config.load_config` / `validate_config`.
        output: the output folder (default `cfg["output"]`).
        resume: continue an interrupted run from `OUTPUT.partial/`.
        extra_callbacks: optional Keras callbacks added to both trainings.

    Returns:
        The `results.json` content as a dict.

    Example:

    ```python
    from kd_keras.config import load_config
    from kd_keras.pipeline import run_distill
    results = run_distill(load_config("configs/demo.yaml"))
    print(results["student"]["accuracy"])
    ```
    """
    verbose = cfg["verbose"]
    output = os.path.abspath(output or cfg["output"])
    work_dir = f"{output}.partial"
    stages = tqdm(total=6, desc="kd-keras distill", unit="stage", disable=not verbose)
    keras.utils.set_random_seed(cfg["seed"])

    # 1. Data, checked before anything is written.
    stages.set_postfix_str("data")
    data = load_data(cfg)
    encoder = WordPieceEncoder(vocabulary_path(cfg), cfg["student"]["sequence_length"])
    if not resume and os.path.exists(work_dir):
        shutil.rmtree(work_dir)
    os.makedirs(work_dir, exist_ok=True)
    ids = {s: encoder(data.texts[s]) for s in SPLITS}
    stages.update()

    # 2. Teacher: adapt / load, logits for every split (cached).
    stages.set_postfix_str("teacher")
    feature_cache = cfg["distill"]["cache_dir"] or os.path.join(
        os.path.dirname(output), ".kd_keras_cache")
    t = teacher_stage.prepare_teacher(cfg, data, ids, work_dir, feature_cache, verbose)
    stages.update()

    strategy = kd_keras.distribute.get_strategy(cfg["distribute"]["strategy"])
    # 3. Distillation.
    stages.set_postfix_str("distill")
    student, distill_history = training.distill_student(
        cfg, ids, data.labels, t["logits"], encoder.vocab_size, data.num_classes,
        work_dir, strategy, extra_callbacks, verbose)
    student.save(os.path.join(work_dir, "student.keras"))
    stages.update()

    # 4. Baseline: the same student on labels alone.
    stages.set_postfix_str("baseline")
    baseline, baseline_history = None, None
    if cfg["distill"]["baseline"]:
        baseline, baseline_history = training.train_baseline(
            cfg, ids, data.labels, encoder.vocab_size, data.num_classes, work_dir,
            strategy, extra_callbacks, verbose)
        baseline.save(os.path.join(work_dir, "student_without_distillation.keras"))
    stages.update()

    # 5. Export and verification.
    stages.set_postfix_str("export")
    export_report = None
    if cfg["export"] is not None:
        rng = np.random.default_rng(cfg["seed"])
        calib = ids["train"][rng.permutation(len(ids["train"]))[:200]]
        export_report = kd_keras.export.export_model(
            student, os.path.join(work_dir, "export"),
            formats=tuple(cfg["export"]["formats"]),
            quantization=tuple(cfg["export"]["quantization"]),
            representative_data=calib,
            validation_data=(ids["test"], data.labels["test"]),
            labels=data.label_names)
    stages.update()

    # 6. Results.
    stages.set_postfix_str("results")
    results = {
        "labels": list(data.label_names),
        "teacher": {"accuracy": training.logits_accuracy(t["logits"]["test"], data.labels["test"]),
                    "params": t["params"]},
        "student": {"accuracy": training.accuracy(student, ids["test"], data.labels["test"]),
                    "params": int(student.count_params())},
    }
    if t["model"] is not None:
        example = (ids["test"][:1] if t["reads_ids"]
                   else teacher_stage._strings(data.texts["test"][:1]))
        results["teacher"]["latency_ms_p50"] = report.keras_latency_ms(t["model"], example)
    if baseline is not None:
        results["student_without_distillation"] = {
            "accuracy": training.accuracy(baseline, ids["test"], data.labels["test"]),
            "params": int(baseline.count_params())}
    results["export"] = os.path.join(output, "export", "report.json") if export_report else None
    results["details"] = {
        "teacher_route": t["route"],
        "architecture": cfg["student"]["architecture"],
        "sequence_length": cfg["student"]["sequence_length"],
        "splits": data.sizes(),
        "labeled_train_examples": int((data.labels["train"] >= 0).sum()),
        "epochs_run": {"distill": len(distill_history.get("loss", [])),
                       "baseline": len((baseline_history or {}).get("loss", []))},
        "seed": cfg["seed"],
    }
    if export_report:
        # Point the export report at where the files will be after the rename.
        export_report = _fix_export_paths(export_report, work_dir, output)
        _atomic_json(os.path.join(work_dir, "export", "report.json"), export_report)
        results["details"]["artifacts"] = report.artifact_summary(export_report)
    report.plot_curves(distill_history, baseline_history,
                       os.path.join(work_dir, "training_curves.png"))
    _atomic_json(os.path.join(work_dir, "history.json"),
                 {"distill": distill_history, "baseline": baseline_history})
    _atomic_json(os.path.join(work_dir, "results.json"), results)
    shutil.rmtree(os.path.join(work_dir, "backup"), ignore_errors=True)
    _publish(work_dir, output)
    stages.update()
    stages.close()
    return results
