"""Raw-sentence artifacts: the tokenizer inside the SavedModel (`serving_text`)
and the TFLite files (`model_text*.tflite`) must treat every sentence as the
training pipeline did. The reference is always the Keras student fed with
the pipeline's own ids (`kd_keras.data.WordPieceEncoder`, i.e. KerasHub's
`BertTokenizer`), never the exported artifact."""

import os
import random

import numpy as np
import pytest
import tensorflow as tf

from kd_keras.data import WordPieceEncoder
from kd_keras.data import load_builtin

from .conftest import EDGE_SENTENCES
from .conftest import export_text_model
from .conftest import TEXT_SEQ_LEN
from .conftest import minilm_vocabulary

pytestmark = pytest.mark.slow


def _random_sentences(n, seed=0):
    """Random text over ASCII, Latin-1, Greek/Cyrillic, punctuation, spaces,
    CJK, emoji, full-width forms and combining marks."""
    rng = random.Random(seed)
    pools = [range(0x20, 0x7F), range(0xA0, 0x250), range(0x370, 0x500), range(0x2000, 0x2070),
             range(0x3000, 0x3100), range(0x4E00, 0x4F00), range(0x1F300, 0x1F700),
             range(0xFE00, 0xFF00), range(0x300, 0x370)]
    words = [" ", "the", "Film", "é", "!", "😀", "\u0301", "\u00a0", "ß", "…", "日", "\u200d", "x"]
    out = []
    for _ in range(n):
        out.append("".join(chr(rng.choice(rng.choice(pools))) for _ in range(rng.randint(0, 30))))
        out.append("".join(rng.choice(words) for _ in range(rng.randint(0, 40))))
    return out


def test_in_graph_tokenizer_gives_the_pipeline_ids(text_export):
    """Every sentence of both built-in datasets, the edge cases and random
    Unicode: the TFLite-convertible tokenizer's ids equal KerasHub's."""
    from kd_keras.export import WordPiecePreprocessor

    pre = WordPiecePreprocessor(minilm_vocabulary(), TEXT_SEQ_LEN)  # Cached table.
    encode = tf.function(lambda t: pre(t)["token_ids"],
                         input_signature=[tf.TensorSpec([None], tf.string)])
    encoder = WordPieceEncoder(minilm_vocabulary(), TEXT_SEQ_LEN)
    texts = list(EDGE_SENTENCES) + _random_sentences(5000)
    for name in ("rt_polarity", "ag_news"):
        data = load_builtin(name, seed=0)
        texts += [t for split in ("train", "validation", "test") for t in data.texts[split]]
    got = np.concatenate([encode(tf.constant(texts[i:i + 4096])).numpy()
                          for i in range(0, len(texts), 4096)])
    expected = encoder(texts)
    differ = [texts[i] for i in np.flatnonzero((got != expected).any(1))]
    assert differ == []
    # The edge cases exercise truncation, [UNK]s and an empty sentence.
    long_row = expected[EDGE_SENTENCES.index("a gorgeous , moving film " * 12)]
    assert long_row[-1] == 102 and (long_row != 0).all()  # [SEP] last, no padding
    assert expected[0].tolist()[:3] == [101, 102, 0]  # "" -> [CLS] [SEP]
    assert (expected == 100).any()  # some [UNK]


def _run_saved_model(path, texts):
    import tensorflow_text  # noqa: F401

    sig = tf.saved_model.load(path).signatures["serving_text"]
    return {k: v.numpy() for k, v in sig(text=tf.constant(texts)).items()}


def _run_tflite(path, texts):
    from ai_edge_litert.interpreter import InterpreterWithCustomOps
    from tensorflow_text import tflite_registrar

    interp = InterpreterWithCustomOps(
        custom_op_registerers=tflite_registrar.SELECT_TFTEXT_OPS, model_path=path)
    runner = interp.get_signature_runner("serving_text")
    return runner(text=np.array([t.encode("utf-8") for t in texts], dtype=object))


def test_text_artifacts_classify_like_the_student_on_pipeline_ids(text_export):
    by_name = {(a["format"], a["quantization"]): a
               for a in text_export.report["artifacts"] if a.get("validation") == "text"}
    assert set(by_name) == {("saved_model", "none"), ("tflite", "none"), ("tflite", "int8")}
    out = text_export.out_dir
    assert by_name[("tflite", "none")]["path"] == os.path.join(out, "tflite", "model_text.tflite")
    assert by_name[("tflite", "int8")]["path"] == os.path.join(
        out, "tflite", "model_text_int8.tflite")
    for entry in by_name.values():
        assert entry["signature"] == "serving_text" and entry["passed"], entry
        assert entry["latency_ms_p50"] > 0  # one sentence, tokenization included

    texts = text_export.texts
    reference = text_export.keras_logits(texts)
    edge = slice(len(texts) - len(EDGE_SENTENCES), len(texts))
    runs = {
        "saved_model": _run_saved_model(by_name[("saved_model", "none")]["path"], texts),
        "tflite": _run_tflite(by_name[("tflite", "none")]["path"], texts),
        "tflite int8": _run_tflite(by_name[("tflite", "int8")]["path"], texts),
    }
    for name, outputs in runs.items():
        classes = outputs["logits"].argmax(-1)
        agreement = np.mean(classes == reference.argmax(-1))
        if name == "tflite int8":
            assert agreement >= 0.98, name
        else:
            assert agreement == 1.0, name
            np.testing.assert_allclose(outputs["logits"], reference, atol=1e-4)
        # Each edge case gets the student's class.
        assert classes[edge].tolist() == reference[edge].argmax(-1).tolist(), name
        names = [c.decode() for c in outputs["classes"]]
        assert names == [["neg", "pos"][i] for i in classes]
        np.testing.assert_allclose(outputs["probabilities"].sum(-1), 1.0, atol=1e-5)


def test_text_artifacts_listed_warmed_up_and_reverified(text_export):
    from kd_keras.export import verify_export
    from kd_keras.export.report import read_report
    from kd_keras.export.warmup import read_warmup_requests
    from kd_keras.export.warmup import request_to_arrays

    stored = read_report(text_export.out_dir)
    assert [a.name for a in stored.artifacts if a.validation == "text"] == [
        "saved_model/none/text", "tflite/none/text", "tflite/int8/text"]
    checks = verify_export(text_export.out_dir, latency_runs=0)
    assert [c.failures for c in checks] == [()] * len(checks)
    with open(os.path.join(text_export.out_dir, "report.md"), encoding="utf-8") as f:
        table = f.read()
    assert table.count("| text |") == 3

    version_dir = text_export.report["artifacts"][0]["path"]
    requests = read_warmup_requests(version_dir)
    text_requests = [r for r in requests if r.model_spec.signature_name == "serving_text"]
    assert text_requests and len(text_requests) < len(requests)
    sent = [request_to_arrays(r)["text"][0].decode("utf-8") for r in text_requests]
    assert set(sent) <= set(text_export.texts)
    # TF Serving replays them at load: they run, and classify like the student.
    outputs = _run_saved_model(version_dir, sent)
    assert outputs["logits"].argmax(-1).tolist() == (
        text_export.keras_logits(sent).argmax(-1).tolist())


def test_a_drifting_tokenizer_fails_the_export(text_export, tmp_path):
    """Checked against the pipeline's ids, a tokenizer that does not lowercase
    (unlike training) is caught rather than shipped."""
    from kd_keras.export import ExportMismatchError
    from kd_keras.export import FastWordpiecePreprocessor
    from kd_keras.export import TextExport
    from kd_keras.export import export_model

    texts = [t.upper() for t in text_export.texts[:200]]
    pre = FastWordpiecePreprocessor(minilm_vocabulary(), TEXT_SEQ_LEN, lowercase=False)
    with pytest.raises(ExportMismatchError, match="saved_model/none/text"):
        export_model(
            text_export.student, tmp_path / "out", formats=("saved_model",),
            text=TextExport(preprocessor=pre, validation_text=texts,
                            reference_inputs=text_export.encoder(texts)), latency_runs=0)
    assert not os.path.exists(tmp_path / "out")


def test_artifacts_hold_no_path_of_the_machine_that_wrote_them(text_export):
    """A moved or shipped export names no folder of the machine that wrote
    it: no artifact file (the text TFLite files, converted from a temporary
    SavedModel, included) holds the export folder's path or the temporary
    folder's."""
    import tempfile

    parent = os.path.dirname(os.path.abspath(text_export.out_dir)).encode()
    temp = os.path.realpath(tempfile.gettempdir()).encode() + b"/"
    for folder, _, names in os.walk(text_export.out_dir):
        for name in names:
            if name.endswith((".tflite", ".onnx", ".pb")):
                with open(os.path.join(folder, name), "rb") as f:
                    data = f.read()
                assert parent not in data and temp not in data, name


def test_the_export_bar_counts_the_raw_text_artifacts(text_export, tmp_path, monkeypatch):
    # Its total stopped at the id artifacts: the bar sat at 100% while the
    # text files were built.
    import kd_keras.export.exporter as exporter

    bars = []

    class Recorded(exporter.tqdm):
        def close(self):
            bars.append((self.total, self.n))
            super().close()

    monkeypatch.setattr(exporter, "tqdm", Recorded)
    export_text_model(str(tmp_path / "out"), quantization=("none",), max_examples=120)
    # Closed full (tqdm may close twice): SavedModel and TFLite, two steps
    # each, then their two text files.
    assert set(bars) == {(2 * 2 + 2, 2 * 2 + 2)}


def test_an_int8_text_model_takes_the_next_recipe_when_full_int8_loses_its_decisions(
        tmp_path):
    """A student whose decisions hang on differences below an int8 step
    (word vectors 1 +- 0.002, so the activations' range [0, 1] leaves 0.004
    a step): full int8 loses them, and the text TFLite takes the next recipe
    that keeps them, as the token-id TFLite does. It was built with full int8
    alone and failed the export."""
    import keras

    from kd_keras.export import TextExport
    from kd_keras.export import WordPiecePreprocessor
    from kd_keras.export import export_model

    words = [f"w{i}" for i in range(30)]
    vocabulary = tmp_path / "vocab.txt"
    vocabulary.write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    rng = np.random.default_rng(0)
    table = 1.0 + 0.002 * rng.normal(size=(35, 4))
    kernel = rng.normal(size=(4, 2))
    ids = keras.Input((8,), dtype="int32", name="token_ids")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(
        35, 4, embeddings_initializer=keras.initializers.Constant(table))(ids))
    head = keras.layers.Dense(2)
    model = keras.Model(ids, head(pooled))
    head.set_weights([kernel, -table.mean(0) @ kernel])  # Logits centred on the data.
    texts = [" ".join(rng.choice(words, size=6)) for _ in range(300)]
    preprocessor = WordPiecePreprocessor(str(vocabulary), 8)
    encoded = WordPieceEncoder(str(vocabulary), 8)(texts)
    report = export_model(
        model, str(tmp_path / "out"), formats=("tflite",), quantization=("int8",),
        representative_data=encoded[:200], validation_data=encoded[200:],
        text=TextExport(preprocessor=preprocessor, tflite=True, validation_text=texts[200:],
                        representative_text=texts[:200]),
        latency_runs=0)
    by_input = {a.get("validation", "data"): a for a in report["artifacts"]}
    # Full int8 loses the decisions on either input, so both move on.
    for entry in by_input.values():
        assert entry["recipe"] != "full int8" and entry["passed"], entry
    reference = model.predict(encoded[200:], verbose=0).argmax(-1)
    got = _run_tflite(by_input["text"]["path"], texts[200:])["logits"].argmax(-1)
    assert np.mean(got == reference) >= 0.98
