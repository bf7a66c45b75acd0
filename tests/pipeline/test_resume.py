"""`--resume` resumes: an interruption at every stage boundary, and in the
middle of either training, on the ready-model route and the backbone routes,
ends with the results, history and weights of an uninterrupted run, without
redoing finished stages."""

import json
import os

import keras
import numpy as np
import pytest

import kd_keras
from kd_keras.config import load_config
from kd_keras.pipeline import run_distill
from kd_keras.pipeline import training_stage
from pipeline import resume_helpers as rh

pytestmark = pytest.mark.slow

BOUNDARIES = ("data", "teacher_adaptation", "teacher_outputs", "distill", "baseline", "export")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Data files, a ready `.keras` teacher and a tiny BERT checkpoint."""
    from kd_keras.data import WordPieceEncoder
    from kd_keras.teachers import minilm_dir
    from teachers.conftest import save_tiny_bert

    root = tmp_path_factory.mktemp("resume")
    train = rh.sentences(96, seed=0)
    rh.write_tsv(root / "train.tsv", train)
    rh.write_tsv(root / "test.tsv", rh.sentences(32, seed=1))
    bert = str(root / "bert")
    save_tiny_bert(bert, initializer_range=0.02)

    enc = WordPieceEncoder(os.path.join(minilm_dir(), "vocab.txt"), 12)
    keras.utils.set_random_seed(3)
    teacher = keras.Sequential([
        keras.Input((12,), dtype="int32"), keras.layers.Embedding(enc.vocab_size, 8),
        keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2)])
    teacher.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    y = np.array([label == "pos" for _, label in train], "int32")
    teacher.fit(enc([t for t, _ in train]), y, epochs=3, verbose=0)
    teacher.save(str(root / "teacher.keras"))
    routes = {
        "model": {"model": str(root / "teacher.keras")},
        "top_layers": {"backbone": bert, "fine_tune": {
            "train_backbone": True, "top_layers": 1, "epochs": 1, "batch_size": 16}},
        "head": {"backbone": bert},
    }
    return root, routes


# The backbone routes leave `distill.features` to the default recipe, which
# gives them the pooled-vector term: the backbone route then labels its data
# in the features' pass (the adaptation reads the labelled rows only), so
# resuming after the adaptation must not take the adaptation's partial
# logits, and a distillation resumed mid-training restores the optimizer of
# the term's projection. The ready-model route gets logits only.
# After the teacher's outputs are stored, the later stages read the same
# files on every route: the ready-model route covers the later boundaries
# and the baseline's trainings, the backbone route the distillation.
TEACHER_BOUNDARIES = BOUNDARIES[:4]


_REFERENCE = {}


def _config(workspace, route, folder, output, export):
    root, routes = workspace
    return rh.write_config(folder / f"{route}-{export}.yaml", str(root), routes[route], output,
                           **({} if export else {"export": None}))


def reference(workspace, route, export=False):
    """The uninterrupted run of a route (computed once; export is the
    slowest stage, so only the runs that test it export)."""
    key = (route, export)
    if key not in _REFERENCE:
        root, _ = workspace
        out = str(root / f"reference-{route}-{export}")
        run_distill(load_config(_config(workspace, route, root, out, export)))
        _REFERENCE[key] = rh.published(out)
    return _REFERENCE[key]


def assert_same_run(output, expected):
    results, history, weights = rh.published(output)
    assert results == expected[0]
    assert history.keys() == expected[1].keys()
    for kind in history:
        if history[kind] is None:
            assert expected[1][kind] is None
            continue
        assert history[kind].keys() == expected[1][kind].keys()
        for key in history[kind]:
            np.testing.assert_allclose(history[kind][key], expected[1][kind][key], rtol=1e-6)
    for name in weights:
        for a, b in zip(weights[name], expected[2][name], strict=True):
            np.testing.assert_array_equal(a, b)


class Calls:
    """Counts the calls of the functions that do each stage's work."""

    def __init__(self, monkeypatch):
        self.counts = {}
        for owner, name in ((kd_keras.teachers, "adapt_text_teacher"),
                            (kd_keras.cache, "cache_teacher_outputs"),
                            (training_stage, "configured_student"),
                            (kd_keras.pipeline.export_stage, "export_model")):
            monkeypatch.setattr(owner, name, self._counted(name, getattr(owner, name)))

    def _counted(self, name, fn):
        def wrapper(*args, **kwargs):
            self.counts[name] = self.counts.get(name, 0) + 1
            return fn(*args, **kwargs)
        return wrapper


def _interrupted(workspace, route, tmp_path, monkeypatch, interrupt, export=False):
    out = str(tmp_path / "run")
    cfg = load_config(_config(workspace, route, tmp_path, out, export))
    with monkeypatch.context() as m:
        extra = interrupt(m)
        with pytest.raises(rh.Stop):
            run_distill(cfg, extra_callbacks=extra)
    assert not os.path.exists(out) and os.path.isdir(out + ".partial")
    return cfg, out


@pytest.mark.parametrize("route,boundary", [
    # The data and adaptation boundaries through the backbone route only: a
    # ready teacher's adaptation is a no-op stage.
    *[("model", b) for b in BOUNDARIES[2:]],
    *[("top_layers", b) for b in TEACHER_BOUNDARIES],
    ("head", "teacher_adaptation"), ("head", "distill"),
])
def test_interruption_at_a_stage_boundary(workspace, route, boundary, tmp_path, monkeypatch):
    export = boundary in ("baseline", "export")
    expected = reference(workspace, route, export)
    cfg, out = _interrupted(workspace, route, tmp_path, monkeypatch,
                            lambda m: rh.stop_after(m, boundary), export)
    with open(os.path.join(out + ".partial", "stages.json")) as f:
        recorded = list(json.load(f))
    assert recorded[-1] == boundary

    calls = Calls(monkeypatch)
    run_distill(cfg, resume=True)
    done = BOUNDARIES.index(boundary)
    uses_backbone = route != "model"
    if done >= 1 and uses_backbone:
        assert calls.counts.get("adapt_text_teacher", 0) == 0  # never refitted
    if done >= 2:
        assert calls.counts.get("cache_teacher_outputs", 0) == 0
    # The baseline builds two: one picks its epochs on held-out rows.
    expected_builds = (done < 3) + 2 * (done < 4)
    assert calls.counts.get("configured_student", 0) == expected_builds
    assert calls.counts.get("export_model", 0) == (export and done < 5)
    assert_same_run(out, expected)


class StopInTraining(rh.StopAtEpoch):
    """Stops the distillation, the baseline's held-out training that picks
    its epochs (`baseline_epochs`, the first plain fit) or the baseline."""

    def __init__(self, kind, epoch):
        super().__init__(epoch)
        self.kind = kind
        self.plain_fits = 0

    def on_train_begin(self, logs=None):
        if not isinstance(self.model, kd_keras.Distiller):
            self.plain_fits += 1

    def on_epoch_end(self, epoch, logs=None):
        if isinstance(self.model, kd_keras.Distiller):
            which = "distill"
        else:
            which = "baseline_epochs" if self.plain_fits == 1 else "baseline"
        if which == self.kind:
            super().on_epoch_end(epoch, logs)


@pytest.mark.parametrize("route,kind", [
    ("model", "distill"), ("model", "baseline_epochs"), ("model", "baseline"),
    ("top_layers", "distill"),
])
def test_interruption_in_the_middle_of_training(workspace, route, kind, tmp_path, monkeypatch):
    expected = reference(workspace, route)
    if route == "top_layers":  # The recipe's term, whose projection the optimizer trains.
        assert "features_cosine" in expected[1]["distill"]
    cfg, out = _interrupted(workspace, route, tmp_path, monkeypatch,
                            lambda m: [StopInTraining(kind, epoch=0)])
    with open(os.path.join(out + ".partial", f"history-{kind}.json")) as f:
        assert len(json.load(f)["loss"]) == 1  # one epoch before the interruption
    calls = Calls(monkeypatch)
    run_distill(cfg, resume=True)
    assert calls.counts.get("adapt_text_teacher", 0) == 0
    assert_same_run(out, expected)
    if kind != "baseline_epochs":  # That one's history stays in the run's folder.
        with open(os.path.join(out, "history.json")) as f:
            history = json.load(f)[kind]
        assert len(history["loss"]) == len(expected[1][kind]["loss"]) >= 1


def test_another_teachers_store_from_the_adaptation_is_refused(workspace, tmp_path,
                                                                monkeypatch):
    # The adaptation's own pass writes the store on this route: its record
    # holds the store's digest, which a resumed run checks.
    from kd_keras.errors import UsageError

    cfg, out = _interrupted(workspace, "top_layers", tmp_path, monkeypatch,
                            lambda m: rh.stop_after(m, "teacher_outputs"))
    metadata = os.path.join(out + ".partial", "teacher_outputs", "train", "metadata.json")
    with open(metadata) as f:
        content = json.load(f)
    content["teacher_fingerprint"] = "another teacher"
    with open(metadata, "w") as f:
        json.dump(content, f)
    with pytest.raises(UsageError, match=r"^--resume: .*teacher_outputs is missing or changed "
                                         r"since its stage finished"):
        run_distill(cfg, resume=True)
