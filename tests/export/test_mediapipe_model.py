"""MediaPipe's text classifier: written from a student, run by MediaPipe.

The reference is independent of every converter and runtime: the Keras
student's logits on the pipeline's own ids (`WordPieceEncoder`), turned into
probabilities in NumPy float64. MediaPipe's Python `TextClassifier` reads the
raw sentences and tokenizes them itself.
"""

import dataclasses
import io
import json
import os
import shutil
import sys
import zipfile

import keras
import numpy as np
import pytest

from export.conftest import minilm_vocabulary
from kd_keras.cli import main
from kd_keras.errors import MissingDependencyError
from kd_keras.errors import UsageError
from kd_keras.export import TextExport
from kd_keras.export import export_model
from kd_keras.export import mediapipe_metadata
from kd_keras.export import mediapipe_model
from kd_keras.export import tolerances
from kd_keras.export import verify_export
from kd_keras.export.mediapipe_model import write_mediapipe_classifier
from kd_keras.export.runtimes import MediaPipeRuntime

SEQ_LEN = 24
LABELS = ["negative", "positive"]
STUDENTS = {
    "text_cnn": dict(embedding_dim=16, filters=16),
    "dilated_cnn": dict(embedding_dim=16),
}


def softmax64(logits):
    logits = np.asarray(logits, np.float64)
    exp = np.exp(logits - logits.max(-1, keepdims=True))
    return exp / exp.sum(-1, keepdims=True)


class World:
    """Movie-review sentences, the pipeline's ids for them and two students
    trained on those ids, each with a pruned vocabulary in front."""

    def __init__(self):
        from kd_keras.data import WordPieceEncoder
        from kd_keras.data import load_builtin
        from kd_keras.students import get_student
        from kd_keras.students.vocabulary import prune_vocabulary
        from kd_keras.students.vocabulary import used_vocabulary

        data = load_builtin("rt_polarity", max_examples=1500, seed=0)
        self.vocabulary = minilm_vocabulary()
        encoder = WordPieceEncoder(self.vocabulary, SEQ_LEN)
        self.train_ids = encoder(data.texts["train"])
        self.texts = list(data.texts["test"])
        self.ids = encoder(self.texts)
        self.labels = data.labels["test"]
        used = used_vocabulary(self.train_ids, encoder.vocab_size)
        self.students = {}
        for name, options in STUDENTS.items():
            keras.utils.set_random_seed(0)
            student = prune_vocabulary(
                lambda n, name=name, options=options: get_student(name)(
                    2, vocab_size=n, sequence_length=SEQ_LEN, **options), used)
            student.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(
                from_logits=True))
            student.fit(self.train_ids, data.labels["train"], epochs=3, batch_size=64, verbose=0)
            self.students[name] = student

    def reference(self, name):
        """The independent reference: float64 softmax of the Keras logits on
        the pipeline's ids."""
        return softmax64(self.students[name].predict(self.ids, verbose=0))


@pytest.fixture(scope="module")
def world():
    return World()


@pytest.fixture(scope="module")
def written(world, tmp_path_factory):
    """`{(student, quantization): path}` of the MediaPipe files."""
    folder = tmp_path_factory.mktemp("mediapipe")
    paths = {}
    for name, student in world.students.items():
        for q in ("none", "int8"):
            path = str(folder / f"{name}_{q}.tflite")
            assert write_mediapipe_classifier(
                student, world.vocabulary, LABELS, path, q,
                representative_ids=world.train_ids[:200]) == path
            paths[name, q] = path
    return paths


def mediapipe_probabilities(path, texts):
    """MediaPipe's own runtime on raw sentences, probabilities by class id
    (in a child process cut off from the network: MediaPipe logs usage)."""
    with MediaPipeRuntime().load(path) as runtime:
        probabilities = runtime.run({"text": list(texts)})
        assert sorted(runtime.class_names) == LABELS
    return probabilities.astype(np.float64)


@pytest.mark.parametrize("name", sorted(STUDENTS))
@pytest.mark.parametrize("quantization", ["none", "int8"])
def test_mediapipe_classifies_raw_text_as_the_student_does(world, written, name, quantization):
    reference = world.reference(name)
    probs = mediapipe_probabilities(written[name, quantization], world.texts)
    assert probs.shape == reference.shape
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)  # Softmax out.
    agreement = np.mean(probs.argmax(-1) == reference.argmax(-1))
    assert agreement >= 0.995, agreement
    accuracy = np.mean(probs.argmax(-1) == world.labels)
    assert abs(accuracy - np.mean(reference.argmax(-1) == world.labels)) <= 0.003
    # On ASCII sentences both tokenizers give the same ids (docs/mediapipe.md):
    # the float model then matches the student to float32 rounding.
    ascii_rows = [i for i, t in enumerate(world.texts) if t.isascii()]
    assert len(ascii_rows) > 0.9 * len(world.texts)
    diff = np.abs(probs[ascii_rows] - reference[ascii_rows]).max()
    assert diff <= (1e-5 if quantization == "none" else 0.05), diff


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux network namespaces")
def test_mediapipe_runs_cut_off_from_the_network(written):
    # MediaPipe's native library sends a usage log to Google when a
    # classifier is created. Seen from outside the child, through /proc: a
    # network namespace of its own, with no interface but loopback.
    with MediaPipeRuntime().load(written[sorted(STUDENTS)[0], "none"]) as runtime:
        pid = runtime.process_id
        namespace = os.readlink(f"/proc/{pid}/ns/net")
        with open(f"/proc/{pid}/net/dev") as f:
            interfaces = {line.split(":")[0].strip() for line in f.read().splitlines()[2:]}
    assert namespace != os.readlink("/proc/self/ns/net")
    assert interfaces == {"lo"}
    assert runtime.process_id is None  # Closed: the child has ended.


@pytest.mark.parametrize("name", sorted(STUDENTS))
def test_builtin_ops_only_in_the_litert_interpreter(world, written, name):
    """No custom op and no Flex: the plain interpreter (no resolver) runs it."""
    from ai_edge_litert.interpreter import Interpreter
    from mediapipe.tasks.metadata import schema_py_generated as schema_fb

    path = written[name, "none"]
    with open(path, "rb") as f:
        model = schema_fb.Model.GetRootAs(f.read(), 0)
    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    assert all(max(c.BuiltinCode(), c.DeprecatedBuiltinCode()) != schema_fb.BuiltinOperator.CUSTOM
               for c in codes)
    assert model.SubgraphsLength() == 1  # MediaPipe takes more for a Gemma model.
    runner = Interpreter(model_path=path, num_threads=1).get_signature_runner()
    details = runner.get_input_details()
    assert {k: (list(v["shape"]), np.dtype(v["dtype"]).name) for k, v in details.items()} == {
        k: ([1, SEQ_LEN], "int32") for k in mediapipe_metadata.INPUTS}
    rows = range(0, len(world.ids), 7)
    got = np.concatenate([
        runner(**{k: v[i:i + 1] for k, v in mediapipe_model.bert_inputs(world.ids).items()})[
            "probabilities"] for i in rows])
    np.testing.assert_allclose(got, world.reference(name)[list(rows)], atol=1e-5)
    # Whatever MediaPipe puts at padded positions, the mask makes it padding.
    feeds = mediapipe_model.bert_inputs(world.ids[:1])
    noisy = dict(feeds, input_word_ids=np.where(feeds["input_mask"] == 1, feeds["input_word_ids"],
                                                1037).astype(np.int32))
    np.testing.assert_allclose(runner(**noisy)["probabilities"],
                               runner(**feeds)["probabilities"], atol=1e-7)


def test_the_files_hold_no_path_of_the_machine_that_wrote_them(written):
    """A shipped MediaPipe file (model, metadata, vocabulary, converted from
    a temporary SavedModel) names no folder of the machine that wrote it."""
    import tempfile

    temp = os.path.realpath(tempfile.gettempdir()).encode() + b"/"
    for path in written.values():
        parent = os.path.dirname(os.path.abspath(path)).encode()
        with open(path, "rb") as f:
            data = f.read()
        assert parent not in data and temp not in data, path


def test_metadata_names_the_tokenizer_and_the_classes(world, written):
    from mediapipe.tasks.metadata import metadata_schema_py_generated as metadata_fb
    from mediapipe.tasks.metadata import schema_py_generated as schema_fb

    with open(written["text_cnn", "int8"], "rb") as f:
        content = f.read()
    model = schema_fb.Model.GetRootAs(content, 0)
    (entry,) = [model.Metadata(i) for i in range(model.MetadataLength())
                if model.Metadata(i).Name() == b"TFLITE_METADATA"]
    buffer = model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
    assert metadata_fb.ModelMetadata.ModelMetadataBufferHasIdentifier(buffer, 0)
    meta = metadata_fb.ModelMetadataT.InitFromObj(metadata_fb.ModelMetadata.GetRootAs(buffer, 0))
    assert meta.minParserVersion == b"1.1.0"
    (subgraph,) = meta.subgraphMetadata
    graph = model.Subgraphs(0)
    names = [graph.Tensors(graph.Inputs(i)).Name().decode() for i in range(graph.InputsLength())]
    expected = {"input_word_ids": b"ids", "input_mask": b"mask", "input_type_ids": b"segment_ids"}
    assert [t.name for t in subgraph.inputTensorMetadata] == [
        next(v for k, v in expected.items() if k in n) for n in names]
    (tokenizer,) = subgraph.inputProcessUnits
    assert tokenizer.optionsType == metadata_fb.ProcessUnitOptions.BertTokenizerOptions
    assert [f.name for f in tokenizer.options.vocabFile] == [b"vocab.txt"]
    (output,) = subgraph.outputTensorMetadata
    (label_file,) = output.associatedFiles
    assert (label_file.name, label_file.type) == (
        b"labels.txt", metadata_fb.AssociatedFileType.TENSOR_AXIS_LABELS)
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert sorted(archive.namelist()) == ["labels.txt", "vocab.txt"]
        with open(world.vocabulary, "rb") as f:
            assert archive.read("vocab.txt") == f.read()
        assert archive.read("labels.txt").decode().splitlines() == LABELS


def test_a_student_mediapipe_cannot_run_is_one_line(tmp_path):
    x = keras.Input((4,), name="features")
    model = keras.Model(x, keras.layers.Dense(2)(x))
    with pytest.raises(UsageError, match="one int \\[batch, L\\] id input"):
        write_mediapipe_classifier(model, minilm_vocabulary(), LABELS, str(tmp_path / "m.tflite"))
    # A loop converts to a while subgraph, which MediaPipe takes for a Gemma model.
    ids = keras.Input((8,), dtype="int32", name="ids")
    recurrent = keras.layers.GRU(4)(keras.layers.Embedding(30522, 4)(ids))
    model = keras.Model(ids, keras.layers.Dense(2)(recurrent), name="gru")
    with pytest.raises(UsageError, match="one subgraph, this one has [2-9]"):
        write_mediapipe_classifier(model, minilm_vocabulary(), LABELS, str(tmp_path / "m.tflite"))
    assert not os.listdir(tmp_path)


def test_export_model_verifies_and_rejects_mediapipe_artifacts(world, tmp_path, monkeypatch,
                                                               capsys):
    """Report entries of format mediapipe, re-run by `kd-keras verify`; one
    that misses its tolerance goes to `rejected/` as the others do."""
    monkeypatch.setitem(tolerances.FORMAT_TOLERANCES["mediapipe"], "int8",
                        {"min_top1_agreement": 1.01, "max_accuracy_drop": 0.003})
    out = str(tmp_path / "out")
    report = export_model(
        world.students["text_cnn"], out, formats=("saved_model",), quantization=("none", "int8"),
        representative_data=world.train_ids[:200], validation_data=(world.ids, world.labels),
        labels=LABELS, text=TextExport(validation_text=(world.texts, world.labels),
                                       reference_inputs=world.ids,
                                       mediapipe_vocabulary=world.vocabulary),
        latency_runs=2, reject_mismatch=True)
    (entry,) = [a for a in report["artifacts"] if a["format"] == "mediapipe"]
    assert entry["path"] == os.path.join(out, "mediapipe", "model.tflite")
    assert entry["passed"] and entry["validation"] == "text"
    assert entry["top1_agreement"] >= 0.995 and entry["latency_ms_p50"] > 0
    (rejected,) = report["rejected"]
    assert (rejected["format"], rejected["path"]) == (
        "mediapipe", os.path.join(out, "rejected/mediapipe/model_int8.tflite"))
    assert rejected["recipe"] and os.path.isfile(rejected["path"])
    # Both files come from one wrapper SavedModel, verified against logits
    # the model set's already had (the same ids): the report's numbers are
    # MediaPipe's own against NumPy's softmax of the student's logits.
    reference = world.reference("text_cnn")
    for measured in (entry, rejected):
        probs = mediapipe_probabilities(measured["path"], world.texts)
        assert measured["max_abs_diff"] == pytest.approx(
            np.abs(probs - reference).max(), abs=1e-6)
        assert measured["top1_agreement"] == np.mean(probs.argmax(-1) == reference.argmax(-1))
        assert measured["accuracy"] == np.mean(probs.argmax(-1) == world.labels)
    assert {"mediapipe/none", "mediapipe/int8"} <= set(report["seconds"])
    assert sorted(os.listdir(os.path.join(out, "mediapipe"))) == ["model.tflite"]

    capsys.readouterr()
    assert main(["verify", out]) == 0
    assert "mediapipe" in capsys.readouterr().out
    # A MediaPipe model the report does not list is caught, as a MediaPipe one.
    shutil.copy(entry["path"], os.path.join(out, "mediapipe", "extra.tflite"))
    failed = [c for c in verify_export(out, latency_runs=0) if not c.passed]
    assert [(c.artifact.format, c.artifact.path) for c in failed] == [
        ("mediapipe", "mediapipe/extra.tflite")]
    os.remove(os.path.join(out, "mediapipe", "extra.tflite"))
    # An altered file fails its check.
    with open(report["artifacts"][-1]["path"], "ab") as f:
        f.write(b"\0")
    with open(os.path.join(out, "report.json")) as f:
        assert json.load(f)["artifacts"][-1]["format"] == "mediapipe"
    assert main(["verify", out]) != 0


def test_without_mediapipe_the_artifacts_are_skipped_in_one_line(world, tmp_path, monkeypatch,
                                                                 capsys):
    options = dict(formats=("saved_model",), quantization=("none",),
                   validation_data=(world.ids[:64], world.labels[:64]), labels=LABELS,
                   latency_runs=0)
    text = TextExport(validation_text=(world.texts[:64], world.labels[:64]),
                      reference_inputs=world.ids[:64])
    student = world.students["text_cnn"]
    plain = export_model(student, str(tmp_path / "plain"), text=text, **options)
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # As if not installed.
    capsys.readouterr()
    report = export_model(student, str(tmp_path / "out"), **options, text=dataclasses.replace(
        text, mediapipe_vocabulary=world.vocabulary))
    lines = capsys.readouterr().err.strip().splitlines()
    hint = 'needs mediapipe: pip install "kd_keras[mobile]"'
    assert [l for l in lines if "mediapipe" in l.lower()] == [
        f"export: skipped the MediaPipe artifacts: The MediaPipe text classifier {hint}"]
    assert [a["path"].replace(str(tmp_path / "out"), "") for a in report["artifacts"]] == [
        a["path"].replace(str(tmp_path / "plain"), "") for a in plain["artifacts"]]
    assert report["skipped"] == [{"format": "mediapipe", "quantization": "none",
                                  "reason": f"The MediaPipe text classifier {hint}"}]
    assert not os.path.exists(tmp_path / "out" / "mediapipe")
    with pytest.raises(MissingDependencyError, match=hint.replace("[", "\\[").replace("]", "\\]")):
        write_mediapipe_classifier(student, world.vocabulary, LABELS, str(tmp_path / "m.tflite"))
    with pytest.raises(MissingDependencyError, match="kd_keras\\[mobile\\]"):
        MediaPipeRuntime().load(str(tmp_path / "m.tflite"))
