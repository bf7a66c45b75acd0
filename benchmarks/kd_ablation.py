"""What moves the distilled student, with the teacher held fixed.

Adapts one teacher (the demo's, on the built-in rt_polarity data) once, or
reuses the teacher of a finished demo run (`--run runs/demo`:
`teacher.weights.h5` and `teacher_outputs/`, written by `make demo`),
and trains the demo's text CNN on its logits with one distillation setting
changed at a time, over several seeds, next to the same student trained on
labels alone. Holding the teacher fixed isolates the student-side choices
from the teacher's own seed-to-seed noise, which `benchmarks/quality.py`
includes.

Every step is the CLI's own stage function: `data_stage.prepare_data` (the
demo's split, seed 0, and each variant's `distill.augment` copies),
`teacher_stage.adapt_teacher` / `compute_outputs` (which call
`kd_keras.teachers.adapt_text_teacher` with `teacher_stage.adaptation_of`)
and `training_stage.train_student` in a fresh temporary working folder per
training. Only the seed changes between the runs of a variant; the
"MiniLM embedding init" variant sets the student's embedding through a
callback at the start of training.

    python benchmarks/kd_ablation.py                       # seeds 0 1 2
    python benchmarks/kd_ablation.py --seeds 0 --variants "T=2" "alpha=0"
    python benchmarks/kd_ablation.py --seeds 0 --epochs 1 --max-examples 100 \\
        --variants "alpha=0" --out runs/smoke/ablation.json # smoke test

Prints a table and writes benchmarks/results/<name>.json or --out (rows of
variants not run this time are kept from the file, when its teacher and
seeds are the same).
"""

import argparse
import json
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from arguments import add_output_arguments  # noqa: E402
from arguments import merge_rows  # noqa: E402
from arguments import results_path  # noqa: E402
from arguments import write_json  # noqa: E402
from fixed_teacher import FixedTeacher  # noqa: E402

# The teacher's pooled sentence vector taught to the student's `features`
# layer (a learned projection to the teacher's width, dropped at export).
POOLED_TERM = {"teacher_layer": "classifier/pooling", "student_layer": "features",
               "loss": "cosine", "weight": 1.0}
# The factorised tiny_bert (1.3M parameters), at the teacher's sequence
# length so that its tokens line up with the teacher's for the TinyBERT
# hidden-state terms: student layer j learns teacher layer 3j+2's hidden
# states (MSE, through a learned 128 -> 384 projection).
TINY_BERT = {"architecture": "tiny_bert", "sequence_length": 64,
             "options": {"embedding_dim": 32, "embedding_init": "minilm"}}
TINY_BERT_TERMS = [
    {"teacher_layer": f"classifier/backbone/transformer_layer_{t}",
     "student_layer": f"tiny_bert_backbone/group_{j}_inner_layer_0",
     "loss": "mse", "weight": 1.0, "name": f"hidden_{j}"}
    for j, t in ((0, 2), (1, 5))]
# TinyBERT's attention terms on the same layer pairs: KL between the
# attention probabilities, the teacher's 12 heads averaged in groups down to
# the student's. The teacher's maps for every split take 2.1 GB per layer
# in float32; in float32 this row ran out of the machine's 24 GB, so its
# targets (the hidden states too) are held in float16.
TINY_BERT_ATTENTION = [
    {"teacher_layer": f"classifier/backbone/transformer_layer_{t}:attention",
     "student_layer": f"tiny_bert_backbone/group_{j}_inner_layer_0:attention",
     "loss": "attention_kl", "weight": 1.0, "name": f"attention_{j}"}
    for j, t in ((0, 2), (1, 5))]
REPLACE_10 = {"copies": 10, "word_dropout": 0.0, "ngram_prob": 0.0, "replace_prob": 0.3}
# Tang et al.'s mix: each copy is a random n-gram of its sentence (p = 0.25)
# or the sentence with words dropped (p = 0.1) and replaced by neighbours (p = 0.3).
MIXED = {"word_dropout": 0.1, "ngram_prob": 0.25, "replace_prob": 0.3}

# name -> (changes to the demo config, "embedding_init" or None). Augmented
# copies (`distill.augment`) and feature terms (`distill.features`) are read
# from the variant's config and labelled by the fixed teacher.
VARIANTS = {
    "demo config": ({}, None),  # logits only (the demo config before its feature term)
    "T=3": ({"distill": {"temperature": 3.0}}, None),
    "T=2": ({"distill": {"temperature": 2.0}}, None),
    "alpha=0": ({"distill": {"alpha": 0.0}}, None),
    "alpha=0.5": ({"distill": {"alpha": 0.5}}, None),
    "logit_mse, alpha=0": ({"distill": {"loss": "logit_mse", "alpha": 0.0}}, None),
    "20 epochs, patience 5": ({"distill": {"epochs": 20, "early_stopping": {"patience": 5}}}, None),
    "augment 2 copies": ({"distill": {"augment": {"copies": 2}}}, None),
    "augment 4 copies, replace words": ({"distill": {"augment": {
        "copies": 4, "word_dropout": 0.0, "ngram_prob": 0.0, "replace_prob": 0.3}}}, None),
    "MiniLM embedding init": ({}, "embedding_init"),
    "+ pooled features (cosine)": ({"distill": {"features": [POOLED_TERM]}}, None),
    "+ alpha schedule 0.5 to 0": ({"distill": {"schedules": {
        "alpha": {"type": "linear", "start": 0.5, "end": 0.0}}}}, None),
    "+ temperature schedule 4 to 1": ({"distill": {"schedules": {
        "temperature": {"type": "linear", "start": 4.0, "end": 1.0}}}}, None),
    "augment 4 copies, replace words, one per epoch": ({"distill": {"augment": {
        "copies": 4, "word_dropout": 0.0, "ngram_prob": 0.0, "replace_prob": 0.3,
        "per_epoch": True}}}, None),
    "augment 10 copies, replace words": ({"distill": {"augment": REPLACE_10}}, None),
    "augment 10 copies, replace words, one per epoch": (
        {"distill": {"augment": dict(REPLACE_10, per_epoch=True)}}, None),
    "+ pooled features, augment 10 mixed copies": (
        {"distill": {"features": [POOLED_TERM], "augment": dict(MIXED, copies=10)}}, None),
    "+ pooled features, augment 10 mixed copies, 300 filters": (
        {"student": {"options": {"filters": 300}},
         "distill": {"features": [POOLED_TERM], "augment": dict(MIXED, copies=10)}}, None),
    "+ pooled features, 10 mixed copies, one per epoch": (
        {"distill": {"features": [POOLED_TERM],
                     "augment": dict(MIXED, copies=10, per_epoch=True)}}, None),
    "+ pooled features, augment 20 mixed copies": (
        {"distill": {"features": [POOLED_TERM], "augment": dict(MIXED, copies=20)}}, None),
    # The embedding gets rows for the 19,586 ids the training rows and their
    # copies use only (of 30,522); at 100 dimensions the student has about
    # the size of the full table at 64 (2.11M parameters against 2.03M).
    "+ pooled, 10 mixed copies, pruned vocabulary, 100 dims": (
        {"student": {"prune_vocabulary": True, "options": {"embedding_dim": 100}},
         "distill": {"features": [POOLED_TERM], "augment": dict(MIXED, copies=10)}}, None),
    "+ pooled, 10 mixed copies, pruned vocabulary": (
        {"student": {"prune_vocabulary": True},
         "distill": {"features": [POOLED_TERM], "augment": dict(MIXED, copies=10)}}, None),
    # The teacher's sequence length: 3.7% of the test sentences have more
    # than 48 WordPiece ids (the demo student's length), 0.2% more than 64.
    "+ pooled features, sequence 64": (
        {"student": {"sequence_length": 64}, "distill": {"features": [POOLED_TERM]}}, None),
    "+ pooled, 10 mixed copies, sequence 64": (
        {"student": {"sequence_length": 64},
         "distill": {"features": [POOLED_TERM], "augment": dict(MIXED, copies=10)}}, None),
    # The text CNN with a stack of dilated convolutions (`dilated_cnn`,
    # 2.20M parameters): n-grams seen across 17 tokens instead of 5.
    "+ pooled, 10 mixed copies, sequence 64, dilated CNN": (
        {"student": {"architecture": "dilated_cnn", "sequence_length": 64},
         "distill": {"features": [POOLED_TERM], "augment": dict(MIXED, copies=10)}}, None),
    # The same student without the copies: the `make demo` recipe's cost.
    "+ pooled features, sequence 64, dilated CNN": (
        {"student": {"architecture": "dilated_cnn", "sequence_length": 64},
         "distill": {"features": [POOLED_TERM]}}, None),
    "augment 10 copies, one per epoch, 30 epochs": (
        {"distill": {"augment": dict(REPLACE_10, per_epoch=True), "epochs": 30,
                     "early_stopping": {"patience": 10}}}, None),
    "tiny_bert, logits only": ({"student": TINY_BERT}, None),
    "tiny_bert + hidden-state terms": (
        {"student": TINY_BERT, "distill": {"features": TINY_BERT_TERMS}}, None),
    # The hidden-state row with float16 targets: the control for the next row.
    "tiny_bert + hidden-state terms, float16 targets": (
        {"student": TINY_BERT, "distill": {"features": TINY_BERT_TERMS,
                                           "feature_dtype": "float16"}}, None),
    "tiny_bert + hidden-state and attention terms": (
        {"student": TINY_BERT, "distill": {"features": TINY_BERT_TERMS + TINY_BERT_ATTENTION,
                                           "feature_dtype": "float16"}}, None),
}
# variant -> the variant it adds one thing to (the "step" column).
STEPS = {
    "+ pooled features (cosine)": "demo config",
    "+ alpha schedule 0.5 to 0": "demo config",
    "+ temperature schedule 4 to 1": "demo config",
    "+ pooled features, augment 10 mixed copies": "+ pooled features (cosine)",
    "+ pooled features, augment 10 mixed copies, 300 filters":
        "+ pooled features, augment 10 mixed copies",
    "+ pooled features, augment 20 mixed copies": "+ pooled features, augment 10 mixed copies",
    "+ pooled features, 10 mixed copies, one per epoch":
        "+ pooled features, augment 10 mixed copies",
    "+ pooled, 10 mixed copies, pruned vocabulary, 100 dims":
        "+ pooled features, augment 10 mixed copies",
    "+ pooled, 10 mixed copies, pruned vocabulary":
        "+ pooled features, augment 10 mixed copies",
    "+ pooled features, sequence 64": "+ pooled features (cosine)",
    "+ pooled, 10 mixed copies, sequence 64": "+ pooled features, augment 10 mixed copies",
    "+ pooled, 10 mixed copies, sequence 64, dilated CNN":
        "+ pooled, 10 mixed copies, sequence 64",
    "+ pooled features, sequence 64, dilated CNN": "+ pooled features, sequence 64",
    "tiny_bert + hidden-state terms": "tiny_bert, logits only",
    "tiny_bert + hidden-state terms, float16 targets": "tiny_bert + hidden-state terms",
    "tiny_bert + hidden-state and attention terms":
        "tiny_bert + hidden-state terms, float16 targets",
}
# Config keys whose change also changes the student trained on labels alone.
STUDENT_TRAINING_KEYS = ("epochs", "early_stopping", "learning_rate", "batch_size")


def dotted(changes, prefix=""):
    """Nested changes as the dotted keys of `kd_keras.config.apply_overrides`.

    Example:

    >>> dotted({"distill": {"alpha": 0.0, "augment": {"copies": 2}}})
    {'distill.alpha': 0.0, 'distill.augment.copies': 2}
    """
    flat = {}
    for key, value in changes.items():
        if isinstance(value, dict):
            flat.update(dotted(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def base_raw(args):
    """The raw demo config with this invocation's data and epochs."""
    from quality import text_cnn_demo_raw

    from kd_keras.config import apply_overrides

    raw = text_cnn_demo_raw()
    # Every variant starts from logits only: the recipe's feature term is the
    # "+ pooled features (cosine)" row.
    raw["distill"]["features"] = []
    if args.data:
        raw["data"] = {"train": os.path.abspath(args.data)}
    given = {"distill.epochs": args.epochs, "data.max_examples": args.max_examples}
    raw = apply_overrides(raw, {k: v for k, v in given.items() if v is not None})
    raw["verbose"] = 0
    return raw


def variant_config(raw, changes):
    """The validated `RunConfig` of a variant (seed 0)."""
    from kd_keras.config import apply_overrides
    from kd_keras.config import parse_config

    return parse_config(apply_overrides(raw, dotted(changes)), base_dir=os.getcwd())


def minilm_embedding_pca(cfg, dim):
    """The teacher backbone's word embeddings projected on their top `dim`
    principal components, scaled to a standard deviation of 0.05."""
    from safetensors.numpy import load_file

    from kd_keras import teachers

    path = os.path.join(teachers.resolve_backbone(cfg.teacher.backbone), "model.safetensors")
    w = load_file(path)["embeddings.word_embeddings.weight"].astype(np.float64)
    centered = w - w.mean(0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    projected = centered @ vt[:dim].T
    return (projected / projected.std() * 0.05).astype(np.float32)


def _embedding_setter(weights):
    import keras

    class SetEmbedding(keras.callbacks.Callback):
        """Sets the student's `embedding` layer at the start of training."""

        def on_train_begin(self, logs=None):
            student = getattr(self.model, "student", self.model)
            student.get_layer("embedding").set_weights([weights])

    return SetEmbedding()


def train_variant(cfg, data, logits, seed, embedding=None, distill=True, features=None):
    """The student (`keras.Model`) trained alone (`distill=False`) or
    distilled, for one seed, by `training_stage.train_student`."""
    import kd_keras
    from kd_keras.pipeline import training_stage
    from kd_keras.pipeline.teacher_store import FOLDER
    from kd_keras.pipeline.teacher_store import store_outputs
    from kd_keras.pipeline.workdir import RunDir

    cfg = cfg.replace(seed=seed)
    strategy = kd_keras.distribute.get_strategy(cfg.distribute.strategy)
    extra = None if embedding is None else [_embedding_setter(embedding)]
    with tempfile.TemporaryDirectory() as work:
        run = RunDir(os.path.join(work, "run"), cfg)
        outputs = None
        if distill:  # The CLI's store: a teacher cache per split, streamed in training.
            outputs = store_outputs(run.file(FOLDER), data.ids, logits, "fixed teacher",
                                    data.num_classes, features, cfg.distill.feature_dtype)
        trained = training_stage.train_student(cfg, data, run,
                                               "distill" if distill else "baseline",
                                               outputs, strategy, extra)
        return trained.model


def run_variant(cfg, data, logits, seed, embedding=None, distill=True, features=None):
    """Test accuracy of the student alone (`distill=False`) or distilled,
    for one seed (`train_variant`)."""
    from kd_keras.pipeline import training_stage

    model = train_variant(cfg, data, logits, seed, embedding, distill, features)
    return training_stage.model_accuracy(model, data.ids["test"], data.labels["test"])


def seed_wins(row, reference):
    """`"w/n"`: on how many of the shared seeds `row`'s kd beats `reference`'s.

    Example:

    >>> ref = {"runs": [{"seed": 0, "kd": 0.5}, {"seed": 1, "kd": 0.6}]}
    >>> seed_wins({"runs": [{"seed": 0, "kd": 0.7}, {"seed": 1, "kd": 0.6}]}, ref)
    '1/2'
    """
    if reference is None or row is reference:
        return "-"
    theirs = {r["seed"]: r["kd"] for r in reference["runs"]}
    shared = [r for r in row["runs"] if r["seed"] in theirs]
    return f"{sum(r['kd'] > theirs[r['seed']] for r in shared)}/{len(shared)}"


def print_table(rows, teacher, seeds):
    """Prints the variants' table (mean of `seeds`). "wins": the seeds on
    which a variant's kd beats the "demo config" row's kd; "step": the same
    against the row it adds one thing to (`STEPS`)."""
    print(f"\nteacher {100 * teacher:.2f}% (fixed); mean of seeds {seeds}; "
          "wins: seeds on which kd beats the demo config's kd; step: the same against "
          "the row it adds one thing to")
    print(f"{'variant':<56}{'alone':>8}{'kd':>8}{'kd-alone':>10}{'kd/teacher':>12}"
          f"{'wins':>6}{'step':>6}")
    for name, r in rows.items():
        step = seed_wins(r, rows.get(STEPS[name])) if name in STEPS else "-"
        print(f"{name:<56}{100 * r['alone']:>7.2f}%{100 * r['kd']:>7.2f}%"
              f"{100 * r['gain']:>+8.2f}pt{r['kd_over_teacher']:>11.1%}"
              f"{seed_wins(r, rows.get('demo config')):>6}{step:>6}")


def write_results(args, teacher, base, rows):
    """Writes the JSON (atomically), keeping the rows of variants not run
    this time when the teacher and seeds are the same; returns
    `(path, rows written)`."""
    from kd_keras.config import header_resolved
    from kd_keras.config import to_dict

    out = results_path(args)
    if os.path.exists(out):
        with open(out) as f:
            previous = json.load(f)
        if previous["teacher"] == teacher and previous["seeds"] == args.seeds:
            rows = merge_rows(rows, previous["variants"], VARIANTS)
    write_json(out, {"teacher": teacher, "seeds": args.seeds,
                     "data": to_dict(header_resolved(base.data)), "variants": rows})
    return out, rows


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Data: the built-in rt_polarity (the demo's) by default; --data FILE runs on "
               "your own labelled file instead, e.g. a bigger corpus (any format `data.train` "
               "of a config accepts, split by `data.split`).")
    parser.add_argument("--run", default=None, metavar="DIR",
                        help="a finished run of the demo config (teacher.weights.h5, "
                             "teacher_outputs/), e.g. runs/demo; default: adapt the "
                             "demo's teacher here, once")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--epochs", type=int, default=None,
                        help="student epochs (default: the demo's; a variant may set its own)")
    parser.add_argument("--data", default=None, metavar="FILE",
                        help="a labelled text file (text, label) to use instead of the "
                             "built-in data; read as the config key data.train")
    parser.add_argument("--max-examples", type=int, default=None, metavar="N",
                        help="cap each split at N examples (data.max_examples), for a quick run")
    add_output_arguments(parser, "kd_ablation")
    parser.add_argument("--table", action="store_true",
                        help="print the table of the results file and exit")
    args = parser.parse_args()
    if args.table:
        with open(results_path(args)) as f:
            saved = json.load(f)
        print_table(saved["variants"], saved["teacher"], saved["seeds"])
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tqdm.auto import tqdm

    from kd_keras.errors import KdKerasError
    from kd_keras.pipeline import data_stage
    from kd_keras.data.labels import accuracy
    from kd_keras.pipeline import training_stage

    raw = base_raw(args)
    try:
        base = variant_config(raw, {})
    except KdKerasError as e:
        parser.error(str(e))
    data = data_stage.prepare_data(base)  # the demo's split (seed 0)
    with tempfile.TemporaryDirectory() as work:
        fixed = FixedTeacher(base, data, args.run, work)
    teacher = accuracy(fixed.logits["test"], data.labels["test"])

    alone_runs = {}  # (student and its training, seed) -> the student alone
    rows = {}
    for name in tqdm(args.variants, desc="ablation", unit="variant"):
        changes, needs = VARIANTS[name]
        cfg = variant_config(raw, changes)
        # The ids are the student's: a variant with its own sequence length
        # encodes the same split again.
        own_data = (data if cfg.student_sequence_length == base.student_sequence_length
                    else data_stage.prepare_data(cfg))
        v_data, v_logits, features = fixed.distillation_inputs(cfg, own_data)
        embedding = None
        if needs == "embedding_init":
            embedding = minilm_embedding_pca(cfg, cfg.student.options.get("embedding_dim", 64))
        # The student alone only changes with the student or its own training.
        alone_key = (needs, repr(cfg.student),
                     repr([getattr(cfg.distill, k) for k in STUDENT_TRAINING_KEYS]))
        runs = []
        for seed in args.seeds:
            if (alone_key, seed) not in alone_runs:
                alone_runs[alone_key, seed] = run_variant(cfg, own_data, fixed.logits, seed,
                                                          embedding, distill=False)
            alone = alone_runs[alone_key, seed]
            kd = run_variant(cfg, v_data, v_logits, seed, embedding, features=features)
            runs.append({"seed": seed, "alone": alone, "kd": kd})
        alone = float(np.mean([r["alone"] for r in runs]))
        kd = float(np.mean([r["kd"] for r in runs]))
        rows[name] = {"changes": changes, "alone": alone, "kd": kd, "gain": kd - alone,
                      "kd_over_teacher": kd / teacher, "runs": runs}
        # Written after every variant: a long run keeps what it finished.
        out, merged = write_results(args, teacher, base, rows)

    print_table(merged, teacher, args.seeds)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
