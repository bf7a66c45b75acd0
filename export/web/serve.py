"""Serves the text-classifier page on 127.0.0.1, with a run's MediaPipe model.

    cd export/web && npm ci          # once: MediaPipe's JS and WASM files
    python export/web/serve.py --model RUN/export/mediapipe/model.tflite

prints the page's address (a free port unless `--port` is given). The page,
`node_modules/` (the MediaPipe bundle and its WASM files) and the model all
come from this server, so the page works offline. The model named by
`--model` is served at `/model.tflite`, the page's default model address;
`?model=OTHER_URL` on the page's address loads another one.

Standard library only. `.mjs` goes out as `text/javascript` and `.wasm` as
`application/wasm` (browsers refuse ES modules and streamed WASM under other
types), with `Cache-Control: no-store`, so a re-written model is reloaded.
"""

import argparse
import functools
import http.server
import os
import sys
import threading

WEB_DIR = os.path.dirname(os.path.abspath(__file__))
"""The folder this server publishes: `index.html`, `app.mjs`, `node_modules/`."""

MODEL_ROUTE = "/model.tflite"
"""Where the `--model` file is served (the page's default model address)."""
TFLITE_IDENTIFIER = b"TFL3"
"""A TFLite flatbuffer's file identifier, at bytes 4 to 8."""
METADATA_NAME = b"TFLITE_METADATA"
"""The name under which a MediaPipe model carries its tokenizer and labels."""
SERVE_THIS = "serve a run's export/mediapipe/model.tflite"

BUNDLE = os.path.join("node_modules", "@mediapipe", "tasks-text", "text_bundle.mjs")

TYPES = {
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".wasm": "application/wasm",
    ".tflite": "application/octet-stream",
    ".html": "text/html; charset=utf-8",
    ".css": "text/css",
}


class PageHandler(http.server.SimpleHTTPRequestHandler):
    """Serves `WEB_DIR` (no folder listings) plus the model at `MODEL_ROUTE`."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **TYPES}

    def translate_path(self, path):
        route = path.split("?", 1)[0].split("#", 1)[0]
        if route == MODEL_ROUTE and self.server.model_path is not None:
            return self.server.model_path
        return super().translate_path(path)

    def list_directory(self, path):
        self.send_error(404, "No folder listings")
        return None

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format, *args):
        if self.server.verbose:
            super().log_message(format, *args)


class PageServer(http.server.ThreadingHTTPServer):
    """A `ThreadingHTTPServer` that knows the model file and its own address."""

    daemon_threads = True

    def __init__(self, address, handler, model_path=None, verbose=False):
        self.model_path = model_path
        self.verbose = verbose
        super().__init__(address, handler)

    @property
    def url(self):
        """The page's address, e.g. `http://127.0.0.1:8123/`."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


def check_files(model=None, directory=WEB_DIR):
    """Returns the absolute model path, or raises with one line on what is missing.

    Args:
        model: the `.tflite` file to serve at `MODEL_ROUTE`, or None.
        directory: the page's folder.

    Returns:
        The model's absolute path, or None.

    Raises:
        FileNotFoundError: the model or MediaPipe's bundle (run `npm ci`) is
            missing.
        ValueError: the model is a folder, not a TFLite file, or a TFLite
            file without MediaPipe's metadata (the page could not run it).
    """
    if not os.path.isfile(os.path.join(directory, BUNDLE)):
        raise FileNotFoundError(f"{os.path.join(directory, BUNDLE)}: missing; run `npm ci` in "
                                f"{directory} first")
    if model is None:
        return None
    if os.path.isdir(model):
        raise ValueError(f"{model}: is a folder, not a model file; {SERVE_THIS}")
    if not os.path.isfile(model):
        raise FileNotFoundError(f"{model}: no such model file")
    with open(model, "rb") as f:
        content = f.read()
    if content[4:8] != TFLITE_IDENTIFIER:
        raise ValueError(f"{model}: not a TFLite model")
    if METADATA_NAME not in content:
        raise ValueError(f"{model}: a TFLite model without MediaPipe's metadata (its "
                         f"tokenizer and labels); {SERVE_THIS}")
    return os.path.abspath(model)


def start(model=None, port=0, directory=WEB_DIR, verbose=False):
    """Starts the server on 127.0.0.1 in a background thread.

    Args:
        model: the `.tflite` file to serve at `MODEL_ROUTE`, or None.
        port: the port; 0 picks a free one.
        directory: the folder to publish.
        verbose: log each request to stderr.

    Returns:
        The running `PageServer`; `server.url` is the page's address. Stop it
        with `server.shutdown(); server.server_close()`.
    """
    model_path = check_files(model, directory)
    handler = functools.partial(PageHandler, directory=directory)
    server = PageServer(("127.0.0.1", port), handler, model_path=model_path, verbose=verbose)
    threading.Thread(target=server.serve_forever, name="page-server", daemon=True).start()
    return server


def _port(text):
    """`--port`: a whole number in 0..65535."""
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"must be a port number in 0..65535, got {text!r}")
    return int(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="the .tflite to serve at /model.tflite "
                        "(a run's export/mediapipe/model.tflite)")
    parser.add_argument("--port", type=_port, default=0,
                        help="the port (default: a free one)")
    args = parser.parse_args(argv)
    try:
        server = start(args.model, args.port, verbose=True)
    except (OSError, ValueError) as e:  # a missing or wrong file, or the port is taken
        print(f"serve.py: error: {e}", file=sys.stderr)
        return 2
    print(f"Serving {WEB_DIR} at {server.url} (model: {server.model_path or 'none'}); "
          "Ctrl+C stops it.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
