"""Accuracy against int8 latency against size: which distilled student to ship.

Distils several students (STUDENTS: the text CNN, a ~4x smaller one,
a BiGRU, a factorised tiny BERT with MiniLM-initialised embeddings, an MLP)
from one fixed teacher (`fixed_teacher.FixedTeacher`: the demo's, adapted here
once, or a finished demo run's with `--run runs/demo`), each over several
seeds alone and distilled (`kd_ablation.train_variant`, i.e. the CLI's
`training_stage.train_student`), with the distill settings of
`quality.TEXT_CNN_RECIPE` (the demo's before the default recipe).
The first seed's distilled student is exported to int8 TFLite and ONNX by
the CLI's export stage (verified; an artifact that misses its tolerance is
kept and reported, as `export.allow_mismatch: true` does), and its int8
TFLite file is timed next to the teacher's SavedModel, one example, one
thread (`quality.one_thread_latency`).

Answers: the smallest student (by parameters) whose mean distilled accuracy
reaches 97% of the teacher's, and which students are on the Pareto front of
parameters, int8 latency and accuracy.

    python benchmarks/frontier.py                          # all students, seeds 0 1 2
    python benchmarks/frontier.py --run runs/demo          # reuse `make demo`'s teacher
    python benchmarks/frontier.py --students text_cnn bigru --seeds 0 --set distill.alpha=0.5
    python benchmarks/frontier.py --run runs/demo --set distill.augment.copies=10 \\
        --set distill.augment.replace_prob=0.3 --students text_cnn_small text_cnn_pruned \\
        text_cnn --out benchmarks/results/frontier_augmented.json \\
        --png benchmarks/results/frontier_augmented.png   # the default recipe's copies
    python benchmarks/frontier.py --max-examples 60 --epochs 1 --seeds 0 \\
        --students text_cnn_small --out runs/smoke/f.json --png runs/smoke/f.png   # smoke test

Prints a markdown table, writes benchmarks/results/frontier.json (or --out)
and a plot, benchmarks/results/frontier.png (or --png; --no-plot skips it).
A run of some students (`--students`) keeps the other students of the
complete results file it replaces when their teacher and settings match.
"""

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from arguments import write_json  # noqa: E402
from frontier_points import TARGET  # noqa: E402
from frontier_points import Point  # noqa: E402
from frontier_points import markdown_table  # noqa: E402
from frontier_points import pareto  # noqa: E402
from frontier_points import smallest_meeting  # noqa: E402
from frontier_points import write_png  # noqa: E402

# name -> changes to the demo config's `student:` section.
STUDENTS = {
    "text_cnn": {},
    "text_cnn_small": {"options": {"embedding_dim": 16, "filters": 50}},
    "bigru": {"architecture": "bigru"},
    "tiny_bert": {"architecture": "tiny_bert",
                  "options": {"embedding_dim": 32, "embedding_init": "minilm"}},
    "mlp": {"architecture": "mlp"},
    # The text CNN's embedding with rows for the training rows' ids only
    # (`student.prune_vocabulary`: 12,900 of 30,522 on the demo's split).
    "text_cnn_pruned": {"prune_vocabulary": True},
    # The text CNN with dilated convolutions on top (n-grams across 17 tokens).
    "dilated_cnn": {"architecture": "dilated_cnn"},
}


def partial_path(out):
    """Where a run keeps its students until it has measured them all.

    Example:

    >>> partial_path("results/frontier.json")
    'results/frontier.partial.json'
    """
    root, ext = os.path.splitext(out)
    return f"{root}.partial{ext}"


def kept_students(out, teacher, meta, measuring, current_form=lambda previous: previous):
    """The students of a complete earlier run that this run does not measure.

    Args:
        out: the earlier results file (it may not exist).
        teacher: this run's teacher accuracy; the earlier run's must equal it.
        meta: this run's settings (seeds, epochs, data, ...); the earlier
            run's must equal them.
        measuring: the students this run measures.
        current_form: maps the earlier file to today's form (its config
            sections with the keys added since then at their defaults).

    Returns:
        `(points, rows, teacher_ms)` of the kept students, each still
        defined as in `STUDENTS`; nothing when the file is missing,
        incomplete, from other settings or unreadable (then it says why).

    Example:

    >>> kept_students("/no/such/frontier.json", 0.8, {"seeds": [0]}, ["a"])
    ([], {}, [])
    """
    if not os.path.isfile(out):
        return [], {}, []
    try:
        with open(out) as f:
            previous = current_form(json.load(f))
        same = (previous["teacher"]["accuracy"] == teacher and not previous.get("students_left")
                and all(previous.get(k) == v for k, v in meta.items()))
        rows = {n: r for n, r in previous["students"].items()
                if same and n not in measuring and r.get("student") == STUDENTS.get(n)}
        points = [Point(n, **{f.name: r[f.name] for f in dataclasses.fields(Point)[1:]})
                  for n, r in rows.items()]
    except (ValueError, KeyError, TypeError, AttributeError) as e:  # ConfigError too
        print(f"{out}: not merged, it cannot be read as a frontier run "
              f"({type(e).__name__}: {e})")
        return [], {}, []
    teacher_ms = [r["latency"]["teacher_saved_model_ms"] for r in rows.values()
                  if "teacher_saved_model_ms" in r.get("latency", {})]
    return points, rows, teacher_ms


def without_copies(cfg):
    """`cfg` without `distill.augment` copies: the split that a finished
    run's teacher outputs (`--run`) and the students alone use."""
    augment = dataclasses.replace(cfg.distill.augment, copies=0)
    return cfg.replace(distill=dataclasses.replace(cfg.distill, augment=augment))


def _current_form(raw, previous):
    """`previous` results with their `data` and `distill` sections parsed
    again (keys added to the config since then take their defaults)."""
    from kd_ablation import variant_config
    from kd_keras.config import header_resolved
    from kd_keras.config import to_dict

    cfg = variant_config(dict(raw, data=previous["data"], distill=previous["distill"]), {})
    # Files from before `no_latency` was recorded were all timed.
    return dict(previous, data=to_dict(header_resolved(cfg.data)), distill=to_dict(cfg.distill),
                no_latency=previous.get("no_latency", False))


def frontier_json(teacher, teacher_params, teacher_ms, points, rows, left, meta):
    """The JSON a run writes, from the students measured so far.

    Args:
        teacher: the teacher's test accuracy.
        teacher_params: its parameter count.
        teacher_ms: its SavedModel latencies, one per timed student (the
            median is kept).
        points: the measured students' `Point`s.
        rows: dict student -> its JSON row.
        left: the students still to measure (empty once the run is done).
        meta: the run's settings (seeds, epochs, data, ...), copied in.

    Returns:
        A JSON-ready dict.

    Example:

    >>> result = frontier_json(0.8, 1000, [20.0, 30.0], [Point("a", 10, 0.79)],
    ...                        {"a": {}}, ["b"], {"seeds": [0]})
    >>> result["teacher"], result["smallest_meeting_target"], result["students_left"]
    ({'accuracy': 0.8, 'params': 1000, 'saved_model_ms': 25.0}, 'a', ['b'])
    """
    t_ms = float(np.median(teacher_ms)) if teacher_ms else None
    return {"teacher": {"accuracy": teacher, "params": teacher_params, "saved_model_ms": t_ms},
            **meta, "target": TARGET,
            "smallest_meeting_target": smallest_meeting(points, teacher),
            "pareto": pareto(points), "students": rows, "students_left": list(left)}


def export_int8(cfg, data, student, folder):
    """Exports `student` to int8 TFLite and int8 ONNX (the CLI's export stage,
    mismatches kept); per format its report entry, or `{"error": ...}`."""
    from kd_keras.config import ExportConfig
    from kd_keras.pipeline import export_stage
    from kd_keras.pipeline.workdir import RunDir

    out = {}
    os.makedirs(folder, exist_ok=True)
    for fmt in ("tflite", "onnx"):
        export = ExportConfig(formats=(fmt,), quantization=("int8",), text=False,
                              allow_mismatch=True)
        run = RunDir(os.path.join(folder, fmt), cfg.replace(export=export))
        try:
            (art,) = export_stage.export_student(cfg.replace(export=export), data, student,
                                                 run)["artifacts"]
        except Exception as e:  # a failed artifact is a result, not a crash
            out[fmt] = {"error": f"{type(e).__name__}: {e}"[:500]}
            continue
        keep = ("size_bytes", "passed", "failures", "top1_agreement", "accuracy",
                "max_abs_diff", "latency_ms_p50", "recipe")
        out[fmt] = {k: art[k] for k in keep if k in art}
        out[fmt]["file"] = os.path.join(run.file("export"), art["path"])
    return out


def main():
    from fixed_teacher import FixedTeacher
    from kd_ablation import train_variant, variant_config
    from quality import TEXT_CNN_RECIPE, base_raw, one_thread_latency, parse_overrides
    from quality import save_teacher

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default=None, metavar="DIR",
                        help="a finished demo run (teacher.weights.h5, teacher_outputs/)")
    parser.add_argument("--students", nargs="+", default=list(STUDENTS), choices=list(STUDENTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="default: the demo's")
    parser.add_argument("--data", default=None, metavar="FILE",
                        help="a labelled text file instead of the built-in data (data.train)")
    parser.add_argument("--max-examples", type=int, default=None, metavar="N",
                        help="cap each split at N examples, for a quick run")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change the demo config, e.g. --set distill.alpha=0.5")
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "frontier.json"))
    parser.add_argument("--png", default=os.path.join(HERE, "results", "frontier.png"))
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from kd_keras.config import header_resolved
    from kd_keras.config import to_dict
    from kd_keras.errors import KdKerasError
    from kd_keras.pipeline import data_stage
    from kd_keras.data.labels import accuracy
    from kd_keras.pipeline import training_stage

    if args.epochs is None:
        args.epochs = TEXT_CNN_RECIPE["distill"]["epochs"]
    args.builtin, args.overrides = None, parse_overrides(parser, args.set)
    raw = base_raw(args)
    try:
        configs = {n: variant_config(raw, {"student": STUDENTS[n]}) for n in args.students}
    except KdKerasError as e:
        parser.error(str(e))
    base = next(iter(configs.values()))
    # The demo's split (seed 0), which the students share; a recipe with
    # augmented copies (`--set distill.augment.copies=10`) adds them below.
    plain = without_copies(base)
    data = data_stage.prepare_data(plain)
    test_x, test_y = data.ids["test"], data.labels["test"]
    out = os.path.abspath(args.out)
    meta = {"seeds": args.seeds, "epochs": args.epochs, "overrides": args.set,
            "no_latency": args.no_latency, "data": to_dict(header_resolved(base.data)),
            "distill": to_dict(base.distill)}
    work = tempfile.mkdtemp(prefix="kd_frontier_")
    try:
        fixed = FixedTeacher(plain, data, args.run, work)
        teacher = accuracy(fixed.logits["test"], test_y)
        # A run of some students keeps the others of the last complete run.
        points, rows, teacher_ms = kept_students(out, teacher, meta, list(configs),
                                                 lambda previous: _current_form(raw, previous))
        kept = list(rows)
        meta["kept"] = kept  # the students taken from the earlier results file
        teacher_model = fixed.teacher_model()
        teacher_dir = os.path.join(work, "teacher_sm")
        if not args.no_latency:
            save_teacher(teacher_model, data.dataset.texts["test"][:2], teacher_dir)
        # What the distilled students train on, shared: the split plus the
        # recipe's copies, the teacher's logits and the recipe's feature
        # terms (the demo's pooled-vector term). The students alone train
        # on the split's labels.
        kd_data, kd_logits, features = fixed.distillation_inputs(base, data)
        for name, cfg in configs.items():
            runs, first = [], None
            for seed in args.seeds:
                alone = training_stage.model_accuracy(
                    train_variant(cfg, data, fixed.logits, seed, distill=False), test_x, test_y)
                student = train_variant(cfg, kd_data, kd_logits, seed, features=features)
                first = student if first is None else first
                runs.append({"seed": seed, "alone": alone,
                             "kd": training_stage.model_accuracy(student, test_x, test_y)})
                print(f"{name} seed {seed}: alone {alone:.4f}, kd {runs[-1]['kd']:.4f}")
            exported = export_int8(cfg, data, first, os.path.join(work, name))
            tfl, lat = exported["tflite"], {}
            if "file" in tfl and not args.no_latency:
                try:
                    lat = one_thread_latency(teacher_dir, tfl["file"],
                                             data.dataset.texts["test"][0], test_x[0])
                    teacher_ms.append(lat["teacher_saved_model_ms"])
                except Exception as e:  # report, keep the accuracies
                    lat = {"error": f"{type(e).__name__}: {getattr(e, 'stderr', e)}"[-500:]}
            point = Point(
                name, int(first.count_params()), float(np.mean([r["kd"] for r in runs])),
                float(np.mean([r["alone"] for r in runs])),
                lat.get("student_tflite_int8_ms"), lat.get("speedup"), tfl.get("size_bytes"),
                tfl.get("accuracy"), tfl.get("passed"))
            points.append(point)
            for art in exported.values():
                art.pop("file", None)
            rows[name] = dict(dataclasses.asdict(point), kd_over_teacher=point.kd / teacher,
                              student=STUDENTS[name], runs=runs, int8=exported, latency=lat)
            # After each student, beside the last complete results, so that
            # a crash later keeps both the students done and those results.
            result = frontier_json(teacher, int(teacher_model.count_params()), teacher_ms,
                                   points, rows, [n for n in configs if n not in rows], meta)
            write_json(partial_path(out), result)
            print(f"wrote {partial_path(out)} ({len(rows) - len(kept)} of {len(configs)} "
                  f"students measured, {len(kept)} kept)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_json(out, result)
    os.remove(partial_path(out))

    t_ms = result["teacher"]["saved_model_ms"]
    print("\n" + markdown_table(points, teacher, result["teacher"]["params"], t_ms))
    print(f"\nsmallest student with >= {TARGET:.0%} of the teacher's accuracy: "
          f"{result['smallest_meeting_target']}; Pareto front: {', '.join(result['pareto'])}")
    print(f"wrote {out}")
    if not args.no_plot:
        os.makedirs(os.path.dirname(os.path.abspath(args.png)), exist_ok=True)
        write_png(points, teacher, args.png)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
