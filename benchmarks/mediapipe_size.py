"""How small a distilled text classifier can ship: MediaPipe int8 size against accuracy.

For one dataset (the demo's movie reviews, or AG News with all its labels),
distils the demo recipe's student in several sizes (`POINTS`: the word table
pruned to the ids the training rows use, to those used at least N times, and
narrower; or a student with its own WordPiece vocabulary, the tokens the
training texts use at least N times, `student.tokenizer_min_count`) from one
fixed teacher (`fixed_teacher.FixedTeacher`), over several seeds, with the
CLI's own training (`kd_ablation.train_variant`). Each seed's student is
written as an int8 MediaPipe text classifier
(`kd_keras.export.mediapipe_model.write_mediapipe_classifier`, the student's
WordPiece vocabulary in its metadata) and run by MediaPipe's own
`TextClassifier` on the raw test sentences, which it tokenizes itself.

Answers: the smallest point whose file is at most `TARGET_BYTES` and whose
mean MediaPipe test accuracy is within `TOLERANCE` of the same recipe's
full-vocabulary artifact (the `full` point).

    python benchmarks/mediapipe_size.py --dataset rt_polarity
    python benchmarks/mediapipe_size.py --dataset ag_news
    python benchmarks/mediapipe_size.py --run runs/demo --points rows4800_d48  # the demo's teacher
    python benchmarks/mediapipe_size.py --points full tok2_d48 tok3_d64 \\
        --keep-teacher runs/size_teacher --out benchmarks/results/mediapipe_size_rt_polarity_tokenizer.json
    python benchmarks/mediapipe_size.py --run runs/size_teacher --points full tok2_d32  # reuse it
    python benchmarks/mediapipe_size.py --max-examples 300 --epochs 1 --seeds 0 \\
        --points full min5_d32 --out runs/smoke/size.json    # smoke test

Prints a markdown table and writes benchmarks/results/mediapipe_size_<dataset>.json
(or --out).
"""

import argparse
import os
import shutil
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from arguments import write_json  # noqa: E402

TARGET_BYTES = 600 * 1024
TOLERANCE = 0.005  # accuracy, as a fraction: 0.5 points
CALIBRATION_ROWS = 500

# name -> changes to the demo config's `student:` section.
POINTS = {
    "full": {},
    "pruned": {"prune_vocabulary": True},
    "min2_d48": {"prune_vocabulary": True, "vocabulary_min_count": 2,
                 "options": {"embedding_dim": 48}},
    "min3_d32": {"prune_vocabulary": True, "vocabulary_min_count": 3,
                 "options": {"embedding_dim": 32}},
    "min5_d32": {"prune_vocabulary": True, "vocabulary_min_count": 5,
                 "options": {"embedding_dim": 32}},
    "min2_d24": {"prune_vocabulary": True, "vocabulary_min_count": 2,
                 "options": {"embedding_dim": 24}},
    # A bounded table: the 4,799 most used ids (595,712 bytes for two classes
    # whatever the data), at the width that kept the accuracy above.
    "rows4800_d48": {"prune_vocabulary": True, "vocabulary_max_rows": 4800,
                     "options": {"embedding_dim": 48}},
    "rows6000_d40": {"prune_vocabulary": True, "vocabulary_max_rows": 6000,
                     "options": {"embedding_dim": 40}},
    # The student's own tokenizer: the wordpieces used at least N times (its
    # vocab.txt is the one in the file, and no id map is needed).
    "tok2_d48": {"tokenizer_min_count": 2, "options": {"embedding_dim": 48}},
    "tok2_d40": {"tokenizer_min_count": 2, "options": {"embedding_dim": 40}},
    "tok2_d32": {"tokenizer_min_count": 2, "options": {"embedding_dim": 32}},
    "tok3_d64": {"tokenizer_min_count": 3},
    "tok3_d48": {"tokenizer_min_count": 3, "options": {"embedding_dim": 48}},
    "tok3_d40": {"tokenizer_min_count": 3, "options": {"embedding_dim": 40}},
    "tok4_d48": {"tokenizer_min_count": 4, "options": {"embedding_dim": 48}},
    "tok5_d64": {"tokenizer_min_count": 5},
    "tok5_d48": {"tokenizer_min_count": 5, "options": {"embedding_dim": 48}},
}


def mediapipe_predictions(path, texts, label_names):
    """Class ids that MediaPipe's Python `TextClassifier` gives `texts`
    (`kd_keras.export.runtimes.MediaPipeRuntime`, cut off from the network)."""
    from kd_keras.export.runtimes import load_runtime

    with load_runtime("mediapipe", path) as runtime:
        probabilities = runtime.run({"text": [str(t) for t in texts]})
        names = runtime.class_names
    assert list(names) == list(label_names), (names, label_names)
    return probabilities.argmax(-1)


def smallest_meeting(rows, reference):
    """The name of the smallest point within budget and tolerance, or None.

    Example:

    >>> rows = {"a": {"size_bytes": 2_000_000, "mediapipe_accuracy": 0.78},
    ...         "b": {"size_bytes": 500_000, "mediapipe_accuracy": 0.776},
    ...         "c": {"size_bytes": 400_000, "mediapipe_accuracy": 0.77}}
    >>> smallest_meeting(rows, 0.78)
    'b'
    """
    meeting = [(r["size_bytes"], n) for n, r in rows.items()
               if r["size_bytes"] <= TARGET_BYTES
               and r["mediapipe_accuracy"] >= reference - TOLERANCE - 1e-12]
    return min(meeting)[1] if meeting else None


def keep_teacher(fixed, folder):
    """Saves a teacher adapted here as a finished run keeps it
    (`teacher.weights.h5`, `teacher_outputs/`), for `--run folder`."""
    from kd_keras.pipeline.teacher_store import FOLDER
    from kd_keras.pipeline.teacher_store import store_outputs

    os.makedirs(folder, exist_ok=True)
    fixed.model.save_weights(os.path.join(folder, "teacher.weights.h5"))
    store_outputs(os.path.join(folder, FOLDER), fixed.data.ids, fixed.logits, "fixed teacher",
                  fixed.data.num_classes)
    print(f"teacher: kept in {folder} (--run {folder})")


def markdown_table(rows, reference):
    lines = ["| point | parameters | vocab.txt | int8 MediaPipe file "
             "| MediaPipe accuracy (per seed) | Keras accuracy | agreement | vs full |",
             "|---|---:|---:|---:|---|---:|---:|---:|"]
    for name, r in rows.items():
        seeds = " / ".join(f"{a:.2%}" for a in r["per_seed"]["mediapipe_accuracy"])
        lines.append(
            f"| {name} | {r['params']:,} | {r['vocabulary_tokens']:,} tokens | "
            f"{r['size_bytes']:,} B | "
            f"{r['mediapipe_accuracy']:.2%} ({seeds}) | {r['keras_accuracy']:.2%} | "
            f"{r['agreement']:.4f} | {100 * (r['mediapipe_accuracy'] - reference):+.2f} |")
    return "\n".join(lines)


def main():
    from fixed_teacher import FixedTeacher
    from kd_ablation import train_variant
    from kd_ablation import variant_config
    from quality import TEXT_CNN_RECIPE
    from quality import base_raw
    from quality import parse_overrides

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="rt_polarity", choices=["rt_polarity", "ag_news"])
    parser.add_argument("--points", nargs="+", default=list(POINTS), choices=list(POINTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--run", default=None, metavar="DIR",
                        help="a finished run of the same config and data, whose adapted "
                             "teacher to reuse (teacher.weights.h5, teacher_outputs/)")
    parser.add_argument("--keep-teacher", default=None, metavar="DIR",
                        help="save the teacher adapted here in DIR, for a later --run DIR")
    parser.add_argument("--epochs", type=int, default=None, help="default: the demo's")
    parser.add_argument("--max-examples", type=int, default=None, metavar="N",
                        help="cap each split at N examples, for a quick run")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change the demo config, e.g. --set distill.alpha=0.5")
    parser.add_argument("--out", default=None, metavar="PATH")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from kd_keras.config import to_dict
    from kd_keras.data.labels import accuracy
    from kd_keras.export.mediapipe_model import write_mediapipe_classifier
    from kd_keras.pipeline import data_stage

    out = os.path.abspath(args.out or os.path.join(
        HERE, "results", f"mediapipe_size_{args.dataset}.json"))
    if args.epochs is None:
        args.epochs = TEXT_CNN_RECIPE["distill"]["epochs"]
    args.data, args.builtin = None, args.dataset
    args.overrides = parse_overrides(parser, args.set)
    raw = base_raw(args)
    configs = {n: variant_config(raw, {"student": POINTS[n]}) for n in args.points}
    base = next(iter(configs.values()))
    data = data_stage.prepare_data(base)
    base = data.config
    texts, test_y = data.dataset.texts["test"], data.labels["test"]
    names = [str(n) for n in data.dataset.label_names]
    work = tempfile.mkdtemp(prefix="kd_mediapipe_size_")
    rows = {}
    try:
        fixed = FixedTeacher(base, data, args.run, work)
        if args.keep_teacher and fixed.run_dir is None:
            keep_teacher(fixed, args.keep_teacher)
        teacher = accuracy(fixed.logits["test"], test_y)
        print(f"teacher: {teacher:.4f}")
        kd_data, kd_logits, features = fixed.distillation_inputs(base, data)
        for name, cfg in configs.items():
            own, point_kd = data, kd_data  # `own`: the student's ids and vocab.txt
            if cfg.student.tokenizer_min_count is not None:  # The same texts, its own ids.
                if base.distill.augment.copies:
                    sys.exit("error: a tokenizer point with distill.augment is not measured here")
                own = point_kd = data_stage.prepare_data(cfg)
                assert own.dataset.texts["train"] == data.dataset.texts["train"]
            per_seed = {"keras_accuracy": [], "mediapipe_accuracy": [], "agreement": []}
            for seed in args.seeds:
                student = train_variant(cfg, point_kd, kd_logits, seed, features=features)
                keras_pred = np.asarray(student.predict(own.ids["test"], verbose=0)).argmax(-1)
                path = os.path.join(work, f"{name}-{seed}.tflite")
                write_mediapipe_classifier(
                    student, own.vocabulary, names, path, quantization="int8",
                    representative_ids=own.ids["train"][:CALIBRATION_ROWS])
                predicted = mediapipe_predictions(path, texts, names)
                per_seed["keras_accuracy"].append(float(np.mean(keras_pred == test_y)))
                per_seed["mediapipe_accuracy"].append(float(np.mean(predicted == test_y)))
                per_seed["agreement"].append(float(np.mean(predicted == keras_pred)))
                size = os.path.getsize(path)
                print(f"{name} seed {seed}: {size / 1024:.0f} KB, MediaPipe "
                      f"{per_seed['mediapipe_accuracy'][-1]:.4f}, Keras "
                      f"{per_seed['keras_accuracy'][-1]:.4f}", flush=True)
            rows[name] = {"student": POINTS[name], "params": int(student.count_params()),
                          "size_bytes": size, "vocabulary_tokens": own.vocab_size,
                          "vocabulary_bytes": os.path.getsize(own.vocabulary),
                          "per_seed": per_seed,
                          **{k: float(np.mean(v)) for k, v in per_seed.items()}}
            write_json(out + ".partial.json", {"rows": rows})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    reference = rows["full"]["mediapipe_accuracy"] if "full" in rows else None
    result = {"dataset": args.dataset, "teacher_accuracy": teacher,
              "teacher_from": args.run or "adapted here", "seeds": args.seeds,
              "epochs": base.distill.epochs, "overrides": args.set,
              "max_examples": args.max_examples, "target_bytes": TARGET_BYTES,
              "tolerance": TOLERANCE, "distill": to_dict(base.distill),
              "reference": "full", "reference_accuracy": reference,
              "smallest_meeting_target": (smallest_meeting(rows, reference)
                                          if reference is not None else None),
              "points": rows}
    write_json(out, result)
    os.remove(out + ".partial.json")
    if reference is not None:
        print("\n" + markdown_table(rows, reference))
        print(f"\nsmallest point <= {TARGET_BYTES // 1024} KB within "
              f"{100 * TOLERANCE:.1f} points of full: {result['smallest_meeting_target']}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
