"""Does the shipped recipe generalise? The same config on data it was not tuned on.

The recipe (a config file, `configs/demo.yaml` by default, tuned on
rt_polarity) runs unchanged except for its `data:` section (and `output`):

- `sst2`: SST-2 from a folder given with `--sst2` (`train.tsv`, 60,614
  phrases; `dev.tsv`, 6,735, the validation split; `test.tsv`, the 872
  sentences of GLUE's dev set, the test split; TSV, header `sentence<TAB>label`);
- `sst2_10k_labels`: the same files with `data.labels_fraction: 0.165`:
  the teacher and the student alone see a seeded 10,002 labelled phrases,
  the other 50,612 training phrases are unlabeled transfer data that the
  teacher labels for the distilled student (the few-labels case);
- `ag_news`: the built-in AG News topics (4 classes), all labels;
- `ag_news_10`: the same with `data.labels_fraction: 0.1` (the other 90% of
  the training texts are unlabeled transfer data).

Per dataset, the teacher is adapted once (seed 0) and held fixed
(`fixed_teacher.FixedTeacher`: `teacher_stage.adapt_teacher` and
`compute_outputs` on the prepared data, so that, as in the CLI, it also
labels the recipe's `distill.augment` copies; `FixedTeacher.features` for
its `distill.features` terms); the student is trained alone and distilled
(`kd_ablation.run_variant`: `training_stage.train_student`) for each seed.
SST-2 rows are compared with published figures and marked against the goals.
The first seed's distilled student is also exported to int8 TFLite and ONNX
and verified against its Keras model on the test split, as the CLI's export
stage does (`--no-int8` skips it).

    python benchmarks/generalisation.py --sst2 ../shared/data/sst2        # all, seeds 0 1 2
    python benchmarks/generalisation.py --datasets ag_news ag_news_10
    python benchmarks/generalisation.py --sst2 ../shared/data/sst2 --datasets sst2 \\
        --keep-teacher runs/teachers                    # saves the teacher's outputs
    python benchmarks/generalisation.py --sst2 ../shared/data/sst2 --datasets sst2 \\
        --keep-teacher runs/teachers --set student.options.filters=200 --out runs/smoke/g.json
    python benchmarks/generalisation.py --datasets ag_news --seeds 0 --epochs 1 \\
        --max-train 200 --out runs/smoke/g.json                           # smoke test

Prints a table and writes benchmarks/results/<name>.json or --out (rows of
datasets not run this time are kept from the file).
"""

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from arguments import add_output_arguments  # noqa: E402
from arguments import add_set_argument  # noqa: E402
from arguments import merge_rows  # noqa: E402
from arguments import results_path  # noqa: E402
from arguments import write_json  # noqa: E402

import fixed_teacher  # noqa: E402
from fixed_teacher import FixedTeacher  # noqa: E402
from kd_ablation import run_variant  # noqa: E402
from kd_ablation import train_variant  # noqa: E402
from quality import parse_overrides  # noqa: E402

SST2_FILES = {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}
# name -> the `data:` section (SST-2's files are added from --sst2).
DATASETS = {
    "sst2": {"format": "tsv", "header": True, "text_column": "sentence",
             "label_column": "label"},
    "sst2_10k_labels": {"format": "tsv", "header": True, "text_column": "sentence",
                        "label_column": "label", "labels_fraction": 0.165},
    "sst2_10": {"format": "tsv", "header": True, "text_column": "sentence",
                "label_column": "label", "labels_fraction": 0.1},
    "ag_news": {"builtin": "ag_news"},
    "ag_news_10": {"builtin": "ag_news", "labels_fraction": 0.1},
    "rt_polarity": {"builtin": "rt_polarity"},
    "rt_polarity_10": {"builtin": "rt_polarity", "labels_fraction": 0.1},
}
# The datasets read from the `--sst2` folder.
SST2_DATASETS = ("sst2", "sst2_10k_labels", "sst2_10")
# Published SST-2 test (GLUE dev) accuracies, for comparison.
REFERENCES = {"sst2": {
    "Tang et al. 2019, BiLSTM from BERT-large": {"teacher": 0.949, "alone": 0.867,
                                                 "distilled": 0.907},
    "TinyBERT4 (Jiao et al. 2020)": {"teacher": 0.934, "alone": None, "distilled": 0.926},
}}
# Goals a dataset with published references is marked against.
# The default recipe's goals per dataset: distilled / teacher on the mean of
# the seeds, and the gain over the student alone on every seed (or none).
GOALS = {"rt_polarity": (0.99, 0.02), "rt_polarity_10": (0.99, None),
         "sst2": (0.99, 0.03), "sst2_10": (0.99, None), "sst2_10k_labels": (0.99, None),
         "ag_news": (0.985, 0.015), "ag_news_10": (0.99, None)}


def data_section(name, sst2_dir=None):
    """The `data:` section of a dataset; SST-2 reads the files in `sst2_dir`.

    Example:

    >>> data_section("ag_news_10")
    {'builtin': 'ag_news', 'labels_fraction': 0.1}
    >>> data_section("sst2", "d")["validation"]
    'd/dev.tsv'
    >>> data_section("sst2_10k_labels", "d")["labels_fraction"]
    0.165
    """
    section = dict(DATASETS[name])
    if name in SST2_DATASETS:
        section.update({k: os.path.join(sst2_dir, f) for k, f in SST2_FILES.items()})
    return section


def recipe_config(config, data, epochs=None, overrides=None):
    """The recipe's validated `RunConfig` (seed 0) with `data` as its `data:`
    section, then `distill.epochs` and the `--set` overrides."""
    from kd_keras.config import load_config

    changes = {"data": data, "output": "runs/generalisation", "seed": 0, "verbose": 0}
    if epochs is not None:
        changes["distill.epochs"] = epochs
    return load_config(config, {**changes, **(overrides or {})})


def subsample_train(data, n, copies=0, seed=0):
    """A `PreparedData` with a seeded random `n` of its training texts (and
    their `copies` augmented versions, which follow the originals in blocks).

    Example:

    >>> from kd_keras.data import TextDataset
    >>> from kd_keras.pipeline.data_stage import PreparedData
    >>> ds = TextDataset({"train": list("abcd"), "validation": [], "test": []},
    ...                  {"train": np.arange(4), "validation": [], "test": []}, ["x", "y"])
    >>> small = subsample_train(PreparedData(ds, {"train": np.arange(4)[:, None]}, 9, ""), 2)
    >>> texts, labels = small.dataset.texts["train"], small.labels["train"]
    >>> ids = small.ids["train"][:, 0].tolist()
    >>> len(texts), texts == ["abcd"[i] for i in labels], labels.tolist() == ids
    (2, True, True)
    """
    rows = len(data.labels["train"])
    base = rows // (copies + 1)
    if n is None or n >= base:
        return data
    keep = np.sort(np.random.default_rng(seed).permutation(base)[:n])
    idx = np.concatenate([keep + k * base for k in range(copies + 1)])
    texts = dict(data.dataset.texts, train=[data.dataset.texts["train"][i] for i in idx])
    labels = dict(data.labels, train=np.asarray(data.labels["train"])[idx])
    dataset = dataclasses.replace(data.dataset, texts=texts, labels=labels)
    ids = dict(data.ids, train=data.ids["train"][idx])
    return dataclasses.replace(data, dataset=dataset, ids=ids)


def summary(teacher, runs):
    """A dataset's accuracies from its teacher's and its per-seed results.

    Example:

    >>> s = summary(0.9, [{"seed": 0, "alone": 0.8, "kd": 0.88},
    ...                   {"seed": 1, "alone": 0.82, "kd": 0.86}])
    >>> round(s["kd"], 3), round(s["gain"], 3), round(s["kd_over_teacher"], 3)
    (0.87, 0.06, 0.967)
    """
    alone = float(np.mean([r["alone"] for r in runs]))
    kd = float(np.mean([r["kd"] for r in runs]))
    return {"teacher": teacher, "alone": alone, "kd": kd, "gain": kd - alone,
            "kd_over_teacher": kd / teacher,
            "alone_runs": [r["alone"] for r in runs], "kd_runs": [r["kd"] for r in runs]}


def goals(name, row):
    """`{goal: met}` of a dataset (`GOALS`): distilled / teacher on the mean,
    and the gain over the student alone on every seed of `row["runs"]`.

    Example:

    >>> runs = [{"alone": 0.80, "kd": 0.84}, {"alone": 0.82, "kd": 0.84}]
    >>> goals("sst2", {"kd_over_teacher": 0.995, "runs": runs})
    {'distilled >= 99% of teacher': True, 'distilled >= alone + 3 points on every seed': False}
    >>> goals("ag_news_10", {"kd_over_teacher": 0.98, "runs": runs})
    {'distilled >= 99% of teacher': False}
    """
    if name not in GOALS:
        return {}
    ratio, gain = GOALS[name]
    marks = {f"distilled >= {ratio:.1%} of teacher".replace(".0%", "%"):
             bool(row["kd_over_teacher"] >= ratio)}
    if gain is not None:
        gains = [r["kd"] - r["alone"] for r in row["runs"]]
        key = f"distilled >= alone + {100 * gain:g} points on every seed"
        marks[key] = bool(min(gains) >= gain - 1e-12)
    return marks


def _reference_key(name):
    """The `REFERENCES` key of a dataset: every SST-2 variant is SST-2."""
    return "sst2" if name in SST2_DATASETS else name


def references(name):
    """The published figures of a dataset, with distilled / teacher.

    Example:

    >>> references("sst2")["TinyBERT4 (Jiao et al. 2020)"]["kd_over_teacher"]
    0.9914346895074947
    """
    return {who: dict(f, kd_over_teacher=f["distilled"] / f["teacher"])
            for who, f in REFERENCES.get(_reference_key(name), {}).items()}


def _relative(section):
    """The data section with file paths relative to the repository."""
    return {k: os.path.relpath(v, ROOT) if k in SST2_FILES and v else v
            for k, v in section.items()}


def run_dataset(name, cfg, args, tqdm):
    """One dataset: its teacher once, then the student alone and distilled
    per seed. Returns its JSON row."""
    from kd_keras.config import header_resolved
    from kd_keras.config import to_dict
    from kd_keras.pipeline import data_stage
    from kd_keras.pipeline import teacher_stage
    from kd_keras.data.labels import accuracy
    from kd_keras.pipeline import training_stage

    seconds = {}
    t = time.perf_counter()
    prepared = data_stage.prepare_data(cfg)
    cfg = prepared.config  # The default recipe's choices for this data filled in.
    data = subsample_train(prepared, args.max_train, cfg.distill.augment.copies)
    seconds["data"] = time.perf_counter() - t
    t = time.perf_counter()
    kept = (os.path.join(args.keep_teacher,
                         f"{name}-{fixed_teacher.outputs_key(cfg, args.max_train)}.npz")
            if args.keep_teacher else None)
    if kept and os.path.exists(kept):
        print(f"{name}: {data.dataset.sizes()}; the teacher's outputs from {kept}")
        layers, _ = fixed_teacher.feature_key(cfg)
        logits, features = fixed_teacher.load_outputs(kept, data, layers)
    else:
        print(f"{name}: {data.dataset.sizes()}; adapting the teacher "
              f"({teacher_stage.adaptation_of(cfg).method}, seed 0)")
        # Adapted on the prepared data, as in the CLI: one teacher pass labels every
        # row (the augmented copies too) and gives the feature targets.
        with tempfile.TemporaryDirectory() as work:
            fixed = FixedTeacher(cfg.replace(verbose=1), data, None, work)
        logits = fixed.logits
        features = fixed.features(cfg, data) if cfg.distill.features else None
        if kept:
            fixed_teacher.save_outputs(kept, logits, features, data)
    seconds["teacher"] = time.perf_counter() - t
    teacher = accuracy(logits["test"], data.labels["test"])
    runs, seconds["alone"], seconds["distill"], int8 = [], 0.0, 0.0, None
    for seed in tqdm(args.seeds, desc=f"{name} students", unit="seed"):
        t = time.perf_counter()
        alone = run_variant(cfg, data, logits, seed, distill=False)
        seconds["alone"] += time.perf_counter() - t
        t = time.perf_counter()
        student = train_variant(cfg, data, logits, seed, features=features)
        kd = training_stage.model_accuracy(student, data.ids["test"], data.labels["test"])
        seconds["distill"] += time.perf_counter() - t
        runs.append({"seed": seed, "alone": alone, "kd": kd})
        if int8 is None and not args.no_int8:
            t = time.perf_counter()
            int8 = int8_check(cfg, data, student)
            seconds["int8"] = time.perf_counter() - t
        print(f"{name} seed {seed}: teacher {100 * teacher:.2f}%, alone {100 * alone:.2f}%, "
              f"distilled {100 * kd:.2f}%", flush=True)
    row = summary(teacher, runs)
    n_rows = len(data.labels["train"])
    n_texts = n_rows // (cfg.distill.augment.copies + 1)
    sizes = dict(data.dataset.sizes(), train=n_texts, augmented_copies=n_rows - n_texts,
                 labelled_train=int(np.sum(data.labels["train"] >= 0)))
    row.update(runs=runs, seeds=args.seeds, sizes=sizes, seconds=seconds,
               adaptation=dataclasses.asdict(teacher_stage.adaptation_of(cfg)),
               teacher_backbone=cfg.teacher.backbone,
               data=_relative(to_dict(header_resolved(cfg.data))),
               config=os.path.relpath(args.config, ROOT),
               overrides=args.set, max_train=args.max_train, epochs=cfg.distill.epochs,
               recipe=[choice.to_json() for choice in prepared.recipe],
               teacher_outputs=os.path.relpath(kept, ROOT) if kept else None,
               int8=int8)
    row.update(references=references(name), goals=goals(name, row))
    return row


def int8_check(cfg, data, student):
    """The first seed's distilled student exported to int8 TFLite and ONNX
    and verified on the test split, as the CLI's export stage does
    (`frontier.export_int8`, mismatches kept): per format `passed`, the
    top-1 agreement with the Keras model, the accuracy and the size."""
    from frontier import export_int8

    with tempfile.TemporaryDirectory() as work:
        exported = export_int8(cfg, data, student, work)
    keep = ("passed", "top1_agreement", "accuracy", "size_bytes", "error")
    return {fmt: {k: v for k, v in art.items() if k in keep} for fmt, art in exported.items()}


def print_table(rows):
    print(f"\n{'dataset':<16}{'train':>8}{'teacher':>9}{'alone':>9}{'kd':>9}{'kd-alone':>10}"
          f"{'kd/teacher':>12}  goals")
    for name, r in rows.items():
        marks = ", ".join(f"{g}: {'met' if ok else 'MISSED'}"
                          for g, ok in r.get("goals", {}).items())
        print(f"{name:<16}{r['sizes']['train']:>8}{100 * r['teacher']:>8.2f}%"
              f"{100 * r['alone']:>8.2f}%{100 * r['kd']:>8.2f}%{100 * r['gain']:>+8.2f}pt"
              f"{r['kd_over_teacher']:>11.1%}  {marks or '-'}")
        for fmt, art in (r.get("int8") or {}).items():
            verdict = ("error: " + art["error"][:80] if "error" in art else
                       f"{'passed' if art['passed'] else 'FAILED'}, agreement "
                       f"{100 * art['top1_agreement']:.2f}%, accuracy {100 * art['accuracy']:.2f}%")
            print(f"  int8 {fmt} (seed {r['runs'][0]['seed']}): {verdict}")
        for who, f in r.get("references", {}).items():
            alone = "-" if f["alone"] is None else f"{100 * f['alone']:.1f}%"
            print(f"  published {who}: teacher {100 * f['teacher']:.1f}%, alone {alone}, "
                  f"distilled {100 * f['distilled']:.1f}% ({f['kd_over_teacher']:.1%} of teacher)")


def write_rows(out, rows):
    """Writes `rows` to `out` atomically, keeping the rows of datasets not
    run this time; returns `(out, the rows written)`."""
    if os.path.exists(out):
        with open(out) as f:
            rows = merge_rows(rows, json.load(f)["datasets"], DATASETS)
    write_json(out, {"datasets": rows})
    return out, rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=None,
                        help="default: all (sst2 only with --sst2)")
    parser.add_argument("--sst2", default=None, metavar="DIR",
                        help="a folder with SST-2's train.tsv, dev.tsv and test.tsv")
    parser.add_argument("--config", default=os.path.join(ROOT, "configs", "demo.yaml"),
                        help="the recipe (default configs/demo.yaml); its data section is replaced")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-train", type=int, default=None, metavar="N",
                        help="a seeded random N training texts, for a quick run")
    parser.add_argument("--epochs", type=int, default=None,
                        help="student epochs (default: the recipe's)")
    parser.add_argument("--keep-teacher", default=None, metavar="DIR",
                        help="save each dataset's adapted-teacher outputs here, and reuse "
                             "them when the teacher and data sections, the augmentation, "
                             "the feature terms' teacher layers, the seed, --max-train and "
                             "the texts match (to compare students without adapting the "
                             "teacher again)")
    parser.add_argument("--no-int8", action="store_true",
                        help="skip the int8 export and verification of the first seed's "
                             "distilled student")
    add_set_argument(parser, "the recipe")
    add_output_arguments(parser, "generalisation")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tqdm.auto import tqdm

    from kd_keras.errors import KdKerasError

    args.config = os.path.abspath(args.config)
    names = args.datasets or [n for n in DATASETS if n not in SST2_DATASETS or args.sst2]
    needs_sst2 = [n for n in names if n in SST2_DATASETS]
    if needs_sst2 and not args.sst2:
        parser.error(f"--datasets {' '.join(needs_sst2)}: needs --sst2 DIR (a folder with "
                     f"{', '.join(SST2_FILES.values())})")
    if args.max_train is not None and args.max_train < 1:
        parser.error(f"--max-train: expected a positive integer, got {args.max_train}")
    if args.keep_teacher:  # checked before the teacher stage, not after it
        try:
            os.makedirs(args.keep_teacher, exist_ok=True)
        except OSError as e:
            parser.error(f"--keep-teacher {args.keep_teacher}: {e.strerror}")
        if not os.access(args.keep_teacher, os.W_OK):
            parser.error(f"--keep-teacher {args.keep_teacher}: not a writable folder")
    sst2_dir = os.path.abspath(args.sst2) if args.sst2 else None
    overrides = parse_overrides(parser, args.set)
    try:  # Every config is checked before anything runs.
        configs = {n: recipe_config(args.config, data_section(n, sst2_dir), args.epochs,
                                    overrides) for n in names}
    except KdKerasError as e:
        parser.error(str(e))

    rows = {}
    for name in tqdm(names, desc="generalisation", unit="dataset"):
        rows[name] = run_dataset(name, configs[name], args, tqdm)
        out, merged = write_rows(results_path(args), rows)  # after each dataset

    print_table(merged)
    print(f"mean of seeds per row (teacher: seed 0, fixed); wrote {out}")


if __name__ == "__main__":
    main()
