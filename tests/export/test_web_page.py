"""The browser page (`export/web/`) gives MediaPipe Python's answers.

A briefly trained text CNN is written as a MediaPipe text classifier; the
page, served by `export/web/serve.py`, runs it in headless Chromium (the
system's, driven by Playwright) through its text box and button. For every
sentence the page's class must be the Python `TextClassifier`'s and its
probabilities within 1e-4. The page gets no network beyond its own server.

`KD_KERAS_SCREENSHOT=docs/images/web_page.png` saves the page's screenshot
there (the one in `docs/web.md`).
"""

import importlib.util
import os
import shutil
import struct
import urllib.error
import urllib.request

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WEB_DIR = os.path.join(REPO_ROOT, "export", "web")
SEQ_LEN = 32
TEST_SENTENCES = 60
SCORE_TOLERANCE = 1e-4
# Launch flags for a container: no sandbox (root), no GPU, no network of its own.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
# Inputs where tokenizers tend to differ: case, accents, punctuation, CJK,
# emoji, an empty box, and more words than the model's length.
EDGE_SENTENCES = [
    "",
    "WHAT A WONDERFUL, WONDERFUL FILM!!!",
    "Un film très émouvant, à voir absolument.",
    "naïve, clichéd... and yet — oddly touching?",
    "这部电影很好看",
    "loved it 😍🍿 best movie of the year",
    " ".join(["a dull, tedious and overlong story"] * 20),
]
LAST_SENTENCE = "A warm, funny and beautifully acted film."
# A TFLite flatbuffer's identifier, and the name MediaPipe's metadata has in it.
PLACEHOLDER_MODEL = b"\x1c\x00\x00\x00TFL3 placeholder TFLITE_METADATA"


def load_serve():
    """`export/web/serve.py` (a script beside the page, not a package)."""
    spec = importlib.util.spec_from_file_location("web_serve", os.path.join(WEB_DIR, "serve.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def chromium_executable():
    """The system Chromium (`KD_KERAS_CHROMIUM`, else Debian's packages)."""
    for candidate in (os.environ.get("KD_KERAS_CHROMIUM"), "chromium-headless-shell",
                      "chromium"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    pytest.fail("no Chromium: `make test` installs Debian's chromium-headless-shell "
                "(or set KD_KERAS_CHROMIUM to a Chromium executable)")


@pytest.fixture
def server(tmp_path):
    """The page's server on a folder laid out like `export/web/` after
    `npm ci`, with a placeholder model; yields the server."""
    site = tmp_path / "site"
    wasm_dir = site / "node_modules" / "@mediapipe" / "tasks-text" / "wasm"
    wasm_dir.mkdir(parents=True)
    (site / "index.html").write_text("<!doctype html>")
    (site / "app.mjs").write_text("export {};")
    (wasm_dir.parent / "text_bundle.mjs").write_text("export {};")
    (wasm_dir / "text_wasm_internal.wasm").write_bytes(b"\0asm\1\0\0\0")
    (tmp_path / "secret.txt").write_text("not for the page")
    model = tmp_path / "model.tflite"
    model.write_bytes(PLACEHOLDER_MODEL)
    srv = load_serve().start(str(model), directory=str(site))
    yield srv
    srv.shutdown()
    srv.server_close()


def test_server_types_and_routes(server):
    def get(path):
        with urllib.request.urlopen(server.url + path, timeout=10) as response:
            return response.headers.get_content_type(), response.read()

    assert server.url.startswith("http://127.0.0.1:")
    assert get("app.mjs")[0] == "text/javascript"
    assert get("node_modules/@mediapipe/tasks-text/text_bundle.mjs")[0] == "text/javascript"
    assert get("")[0] == "text/html"
    wasm_type, wasm = get("node_modules/@mediapipe/tasks-text/wasm/text_wasm_internal.wasm")
    assert (wasm_type, wasm[:4]) == ("application/wasm", b"\0asm")
    # The model given to the server is the page's default model address.
    assert get("model.tflite?v=1") == ("application/octet-stream", PLACEHOLDER_MODEL)
    # No folder listings, nothing outside the page's folder.
    for path in ("node_modules/", "../secret.txt", "%2e%2e/secret.txt", "../model.tflite/x"):
        with pytest.raises(urllib.error.HTTPError) as error:
            get(path)
        assert error.value.code == 404, path


def test_server_needs_npm_ci(tmp_path, capsys):
    serve = load_serve()
    with pytest.raises(FileNotFoundError, match="run `npm ci`"):
        serve.start(directory=str(tmp_path))
    assert serve.main(["--model", str(tmp_path / "missing.tflite")]) == 2
    assert "serve.py: error: " in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [
    (None, "is a folder, not a model file; serve a run's export/mediapipe/model.tflite"),
    (b"<html>not a model</html>", "not a TFLite model"),
    (b"\x1c\x00\x00\x00TFL3 a model without metadata",
     "a TFLite model without MediaPipe's metadata (its tokenizer and labels); serve a "
     "run's export/mediapipe/model.tflite"),
], ids=["folder", "not_tflite", "no_metadata"])
def test_a_model_the_page_cannot_run_is_one_line(server, tmp_path, content, message):
    # The page would fail in the browser with MediaPipe's own error instead.
    model = tmp_path / "given"
    if content is None:
        model.mkdir()
    else:
        model.write_bytes(content)
    # start(), not main(): a main() that took the file would serve forever.
    with pytest.raises(ValueError) as error:
        load_serve().start(str(model), directory=str(tmp_path / "site"))
    assert str(error.value) == f"{model}: {message}"


@pytest.mark.parametrize("port", ["70000", "-1", "²", "http"])
def test_a_bad_port_is_one_line(capsys, port):
    with pytest.raises(SystemExit) as info:
        load_serve().main(["--port", port])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and err[-1].endswith(
        f"argument --port: must be a port number in 0..65535, got {port!r}"), err


def train_student(dataset, encoder):
    """A small text CNN, trained a few epochs so its predictions vary."""
    import keras

    from kd_keras.students import text_cnn

    keras.utils.set_random_seed(0)
    student = text_cnn(dataset.num_classes, vocab_size=encoder.vocab_size,
                       sequence_length=SEQ_LEN, embedding_dim=16, filters=16,
                       kernel_sizes=(3,), dropout=0.0)
    student.compile(keras.optimizers.Adam(3e-3),
                    keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    student.fit(encoder(dataset.texts["train"]), dataset.labels["train"],
                epochs=4, batch_size=32, verbose=0)
    return student


# What MediaPipe's bundle does with its usage log (text_bundle.mjs).
USAGE_LOG_REFUSED = """() => fetch("https://odml.pa.googleapis.com/v1/log", {method: "POST"})
    .then(() => false, () => true)"""


def python_answers(model_path, sentences):
    """MediaPipe Python's (class name, {index: score}) for each sentence (in
    a child process cut off from the network: MediaPipe logs usage)."""
    from kd_keras.export.runtimes import load_runtime

    with load_runtime("mediapipe", model_path) as runtime:
        probabilities = runtime.run({"text": list(sentences)})
        names = runtime.class_names
    return [(names[int(row.argmax())], {i: float(p) for i, p in enumerate(row)})
            for row in probabilities]


def page_answer(page, sentence):
    """Types `sentence` into the page, presses Classify, and reads the shown
    class (from the page) and the probabilities (from its result hook)."""
    count = page.evaluate("window.kdClassifier.count")
    page.fill("#text", sentence)
    page.click("#classify")
    page.wait_for_function(f"window.kdClassifier.count > {count}", timeout=10_000)
    result = page.evaluate("window.kdClassifier")
    assert result["text"] == sentence
    bars = page.locator("#bars .bar-row").count()
    assert bars == len(result["categories"])
    return page.inner_text("#label"), {c["index"]: c["score"] for c in result["categories"]}


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG"
    return struct.unpack(">II", head[16:24])


@pytest.mark.slow
def test_page_matches_mediapipe_python(tmp_path):
    from playwright.sync_api import sync_playwright

    from kd_keras.data import load_builtin
    from kd_keras.data.tokenizer import WordPieceEncoder
    from kd_keras.export.mediapipe_model import write_mediapipe_classifier
    from kd_keras.teachers import minilm_dir

    executable = chromium_executable()
    vocabulary = os.path.join(minilm_dir(), "vocab.txt")
    dataset = load_builtin("rt_polarity", max_examples=480, seed=0)
    student = train_student(dataset, WordPieceEncoder(vocabulary, SEQ_LEN))
    model_path = write_mediapipe_classifier(student, vocabulary, dataset.label_names,
                                            str(tmp_path / "mediapipe" / "model.tflite"))
    sentences = dataset.texts["test"][:TEST_SENTENCES] + EDGE_SENTENCES + [LAST_SENTENCE]
    expected = python_answers(model_path, sentences)
    # The model must not answer one class for everything.
    assert len({label for label, _ in expected}) == dataset.num_classes

    server = load_serve().start(model_path)
    outside = []  # requests for anything but the page's server

    def local_only(route):
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=executable, headless=True,
                args=CHROMIUM_ARGS, viewport={"width": 760, "height": 520})
            try:
                page = browser.new_page()
                page.route("**/*", local_only)
                page.goto(server.url)
                page.wait_for_function("document.body.dataset.state !== 'loading'",
                                       timeout=30_000)
                assert page.evaluate("document.body.dataset.state") == "ready", \
                    page.inner_text("#status")
                for sentence, (label, scores) in zip(sentences, expected):
                    shown_label, shown_scores = page_answer(page, sentence)
                    assert shown_label == label, sentence
                    assert shown_scores.keys() == scores.keys(), sentence
                    gap = max(abs(shown_scores[i] - scores[i]) for i in scores)
                    assert gap <= SCORE_TOLERANCE, (sentence, shown_scores, scores)
                # MediaPipe's bundle posts a usage log to Google every minute:
                # the page's policy refuses it before any request is made
                # (a request made would be in `outside`).
                assert page.evaluate(USAGE_LOG_REFUSED)
                screenshot = str(tmp_path / "web_page.png")
                page.screenshot(path=screenshot)
            finally:
                browser.close()
    finally:
        server.shutdown()
        server.server_close()
    assert outside == []
    assert png_size(screenshot) == (760, 520)
    target = os.environ.get("KD_KERAS_SCREENSHOT")
    if target:
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        shutil.copyfile(screenshot, target)
