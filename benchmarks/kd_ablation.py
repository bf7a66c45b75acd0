"""What moves the distilled student, with the teacher held fixed.

Reuses one teacher (the demo's: `runs/demo/teacher.weights.h5` and
`teacher_logits.npz`, written by `make demo`) and trains the demo's text CNN
on its logits with one distillation setting changed at a time, over several
seeds, next to the same student trained on labels alone. Holding the
teacher fixed isolates the student-side choices from the teacher's own
seed-to-seed noise, which `benchmarks/quality.py` includes.

    python benchmarks/kd_ablation.py                       # seeds 0 1 2
    python benchmarks/kd_ablation.py --seeds 0 --variants "T=1" "alpha=0"

Prints a table and writes benchmarks/results/kd_ablation.json (rows of
variants not run this time are kept from the file, when its teacher and
seeds are the same).
"""

import argparse
import copy
import json
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

# name -> (changes to the demo config, what it needs besides the logits)
VARIANTS = {
    "demo config": ({}, None),
    "T=3": ({"distill": {"temperature": 3.0}}, None),
    "T=2": ({"distill": {"temperature": 2.0}}, None),
    "alpha=0": ({"distill": {"alpha": 0.0}}, None),
    "alpha=0.5": ({"distill": {"alpha": 0.5}}, None),
    "logit_mse, alpha=0": ({"distill": {"loss": "logit_mse", "alpha": 0.0}}, None),
    "20 epochs, patience 5": ({"distill": {"epochs": 20, "early_stopping": {"patience": 5}}}, None),
    "augment 2 copies": ({"distill": {"augment": {"copies": 2}}}, "augment"),
    "augment 4 copies, replace words": ({"distill": {"augment": {
        "copies": 4, "word_dropout": 0.0, "ngram_prob": 0.0, "replace_prob": 0.3}}}, "augment"),
    "MiniLM embedding init": ({}, "embedding_init"),
}


def _merged(cfg, changes):
    cfg = copy.deepcopy(cfg)
    for section, values in changes.items():
        for key, value in values.items():
            if isinstance(value, dict):
                cfg[section][key] = dict(cfg[section][key], **value)
            else:
                cfg[section][key] = value
    return cfg


def _minilm_embedding_pca(dim):
    """MiniLM's word embeddings projected on their top `dim` principal
    components, scaled to a standard deviation of 0.05."""
    from safetensors.numpy import load_file

    from kd_keras.pipeline import teacher_stage

    weights = load_file(os.path.join(teacher_stage.minilm_dir(), "model.safetensors"))
    w = weights["embeddings.word_embeddings.weight"].astype(np.float64)
    centered = w - w.mean(0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    projected = centered @ vt[:dim].T
    return (projected / projected.std() * 0.05).astype(np.float32)


def _augmented_logits(cfg, data, run_dir):
    """The demo teacher's logits on the augmented copies of the train split."""
    import tensorflow as tf

    from kd_keras import teachers
    from kd_keras.pipeline import load_data
    from kd_keras.pipeline import teacher_stage

    t = cfg["teacher"]
    model = teachers.build_text_teacher(teacher_stage.resolve_backbone(t["backbone"]),
                                        data.num_classes, sequence_length=t["sequence_length"])
    model.load_weights(os.path.join(run_dir, "teacher.weights.h5"))
    augmented = load_data(cfg)  # the pipeline's own augmentation (seed 0)
    assert augmented.texts["train"][:len(data.texts["train"])] == data.texts["train"]
    copies = augmented.texts["train"][len(data.texts["train"]):]
    print(f"teacher: labelling {len(copies)} augmented copies")
    return augmented, model.predict(tf.constant(copies), batch_size=128, verbose=1)


def run_variant(cfg, data, ids, logits, vocab_size, seed, embedding=None, distill=True):
    """Test accuracy of the student alone (`distill=False`) or distilled,
    for one seed."""
    import tensorflow as tf

    from kd_keras.pipeline import training

    cfg = dict(cfg, seed=seed)
    build = training.build_student
    if embedding is not None:
        def build_with_embedding(*args):
            model = build(*args)
            model.get_layer("embedding").set_weights([embedding])
            return model
        training.build_student = build_with_embedding
    strategy = tf.distribute.get_strategy()
    try:
        with tempfile.TemporaryDirectory() as work:
            if distill:
                model, _ = training.distill_student(cfg, ids, data.labels, logits, vocab_size,
                                                   data.num_classes, work, strategy, verbose=0)
            else:
                model, _ = training.train_baseline(cfg, ids, data.labels, vocab_size,
                                                   data.num_classes, work, strategy, verbose=0)
            return training.accuracy(model, ids["test"], data.labels["test"])
    finally:
        training.build_student = build


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default=os.path.join(ROOT, "runs", "demo"),
                        help="a finished demo run (teacher.weights.h5, teacher_logits.npz)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--name", default="kd_ablation", help="results/<name>.json")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tqdm.auto import tqdm

    from kd_keras.data import SPLITS, WordPieceEncoder
    from kd_keras.demo import demo_config
    from kd_keras.pipeline import load_data, training, vocabulary_path

    logits_path = os.path.join(args.run, "teacher_logits.npz")
    if not os.path.exists(logits_path):
        sys.exit(f"error: {logits_path} not found; run `make demo` first")
    base = demo_config(output=os.path.join(HERE, "results", "kd_ablation_run"), verbose=0)
    data = load_data(base)  # the demo's split (seed 0), which the logits belong to
    with np.load(logits_path) as f:
        logits = {s: f[s] for s in SPLITS}
    if len(logits["test"]) != len(data.labels["test"]):
        sys.exit(f"error: {logits_path} does not belong to the demo's split")
    encoder = WordPieceEncoder(vocabulary_path(base), base["student"]["sequence_length"])
    ids = {s: encoder(data.texts[s]) for s in SPLITS}
    teacher = training.logits_accuracy(logits["test"], data.labels["test"])

    base_alone = {}  # seed -> the demo config's student alone, computed once
    rows = {}
    for name in tqdm(args.variants, desc="ablation", unit="variant"):
        changes, needs = VARIANTS[name]
        cfg = _merged(base, changes)
        v_data, v_ids, v_logits, embedding = data, ids, logits, None
        if needs == "augment":
            v_data, extra = _augmented_logits(cfg, data, args.run)
            v_ids = dict(ids, train=encoder(v_data.texts["train"]))
            v_logits = dict(logits, train=np.concatenate([logits["train"], extra]))
        elif needs == "embedding_init":
            embedding = _minilm_embedding_pca(cfg["student"]["options"].get("embedding_dim", 64))
        # The student alone only changes when its own training changes.
        own_alone = needs == "embedding_init" or bool(changes.get("distill", {}).keys() & {
            "epochs", "early_stopping", "learning_rate", "batch_size"})
        runs = []
        for seed in args.seeds:
            if own_alone:
                alone = run_variant(cfg, data, ids, logits, encoder.vocab_size, seed, embedding,
                                    distill=False)
            else:
                if seed not in base_alone:
                    base_alone[seed] = run_variant(base, data, ids, logits, encoder.vocab_size,
                                                   seed, distill=False)
                alone = base_alone[seed]
            kd = run_variant(cfg, v_data, v_ids, v_logits, encoder.vocab_size, seed, embedding)
            runs.append({"seed": seed, "alone": alone, "kd": kd})
        alone = float(np.mean([r["alone"] for r in runs]))
        kd = float(np.mean([r["kd"] for r in runs]))
        rows[name] = {"changes": changes, "alone": alone, "kd": kd, "gain": kd - alone,
                      "kd_over_teacher": kd / teacher, "runs": runs}

    out = os.path.join(HERE, "results", f"{args.name}.json")
    if os.path.exists(out):  # keep the rows of variants not run this time
        with open(out) as f:
            previous = json.load(f)
        if previous["teacher"] == teacher and previous["seeds"] == args.seeds:
            rows = {name: rows.get(name) or previous["variants"][name] for name in VARIANTS
                    if name in rows or name in previous["variants"]}
    with open(out + ".tmp", "w") as f:
        json.dump({"teacher": teacher, "seeds": args.seeds, "variants": rows}, f, indent=1)
    os.replace(out + ".tmp", out)
    print(f"\nteacher {100 * teacher:.2f}% (fixed); mean of seeds {args.seeds}")
    print(f"{'variant':<34}{'alone':>8}{'kd':>8}{'kd-alone':>10}{'kd/teacher':>12}")
    for name, r in rows.items():
        print(f"{name:<34}{100 * r['alone']:>7.2f}%{100 * r['kd']:>7.2f}%"
              f"{100 * r['gain']:>+8.2f}pt{r['kd_over_teacher']:>11.1%}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
