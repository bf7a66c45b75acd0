"""`kd-keras predict OUTPUT_OR_ARTIFACT "sentence" ...`: classify sentences.

Runs an exported text model, tokenizer included: the SavedModel's
`serving_text` signature (default) or a `model_text*.tflite` file with the
TF-Text custom ops (`--runtime tflite`). `OUTPUT_OR_ARTIFACT` is a
`kd-keras distill` output folder, an export folder (with `report.json`), a
SavedModel folder (`saved_model/<name>` or one of its versions) or a
`.tflite` file. Prints one line per sentence: class, probability, sentence.
Sentences must be UTF-8 text, and not blank. A `SENTENCE` of `-` reads one
sentence per line from standard input (blank lines skipped), e.g.
`kd-keras predict runs/demo - < reviews.txt`.
"""

import os
import sys

from kd_keras.errors import DataError
from kd_keras.errors import MissingFileError
from kd_keras.errors import UsageError
from kd_keras.errors import VerificationError
from kd_keras.errors import one_line
from kd_keras.export.layout import EXPORT_DIR
from kd_keras.export.layout import REPORT_FILE
from kd_keras.export.layout import TEXT_SIGNATURE
from kd_keras.export.layout import sidecar_path

RUNTIMES = ("saved_model", "tflite")
STDIN = "-"  # the SENTENCE that reads standard input
BATCH = 256  # sentences per call of the model, so one call's tensors stay small


REEXPORT = ("re-export it with its tokenizer (export.text: true, the default, in a "
            "kd-keras distill config; --vocabulary and --text-data for kd-keras export)")

def register(subparsers):
    parser = subparsers.add_parser(
        "predict",
        help="classify sentences with an exported text model (tokenizer inside)",
        description=__doc__.split("\n\n", 1)[1].strip(),
    )
    parser.add_argument("artifact", metavar="OUTPUT_OR_ARTIFACT",
                        help="a distill output or export folder, a SavedModel or a .tflite file")
    parser.add_argument("sentences", metavar="SENTENCE", nargs="+",
                        help="raw sentences, as a user would type them; - reads one "
                             "sentence per line from standard input")
    parser.add_argument("--runtime", choices=RUNTIMES, default=None,
                        help="for a folder: run the SavedModel (default) or the TFLite file")
    parser.add_argument("--quantization", default="none", metavar="Q",
                        help="for --runtime tflite: which model_text file (default: none)")
    parser.set_defaults(func=run)
    return parser


def _latest_version(root):
    versions = sorted(
        (int(d) for d in os.listdir(root) if d.isascii() and d.isdigit()
         and os.path.isfile(os.path.join(root, d, "saved_model.pb"))))
    return os.path.join(root, str(versions[-1])) if versions else None


def _one_models_latest_version(folder):
    """The latest version of the one model under `folder` (an export's
    `saved_model/`), or None when it holds none or several."""
    models = [os.path.join(folder, d) for d in sorted(os.listdir(folder))
              if os.path.isdir(os.path.join(folder, d))]
    versions = [v for v in map(_latest_version, models) if v is not None]
    return versions[0] if len(versions) == 1 else None


def _from_report(export_dir, runtime, quantization):
    from kd_keras.export.report import read_report

    runtime = runtime or "saved_model"
    report = read_report(export_dir)
    texts = [a for a in report.artifacts if a.validation == "text"]
    if not texts:
        raise UsageError(
            f"{export_dir}: this export has no raw-text artifact (predict classifies "
            f"sentences); for a text model, {REEXPORT}")
    wanted = "none" if runtime == "saved_model" else quantization
    for a in texts:
        if a.format == runtime and a.quantization == wanted:
            from kd_keras.export.verify import checksum_failures

            altered = checksum_failures(a)
            if altered:  # What verify would fail is not answered from.
                raise VerificationError(
                    f"{export_dir}: {altered[0]} since the export; kd-keras verify "
                    f"{export_dir} checks the whole folder")
            if not a.passed:  # Kept by --allow-mismatch: say so before every answer.
                print(f"kd-keras predict: warning: {a.name} missed its tolerance when "
                      f"exported ({os.path.join(export_dir, 'report.md')}); its answers may "
                      "differ from the student's", file=sys.stderr)
            return runtime, a.full_path
    have = ", ".join(sorted(f"{a.format}/{a.quantization}" for a in texts
                            if a.format in ("saved_model", "tflite")))  # What predict runs.
    raise UsageError(
        f"--runtime {runtime} --quantization {wanted}: {export_dir} has no such "
        f"raw-text artifact (it has {have})")


def export_folder(path):
    """The export folder that the folder `path` names, or None.

    `path` itself when it holds `report.json`, else its `export/` (a
    `kd-keras distill` output) when that does. `predict` and `verify`
    accept either.

    Args:
        path: a folder.

    Returns:
        The folder holding `report.json`, or None.

    Raises:
        UsageError: `path/export/` is a symbolic link (kd_keras never writes
            one; it could lead out of the folder given).
    """
    for folder in (path, os.path.join(path, EXPORT_DIR)):
        if os.path.lexists(os.path.join(folder, REPORT_FILE)):
            if folder != path and os.path.islink(folder):
                raise UsageError(f"{folder}: a symbolic link, not the export folder a run "
                                 "writes; give the folder it points to")
            return folder
    return None


def resolve(path, runtime=None, quantization="none"):
    """The `(runtime, path)` of the raw-text model `path` points at.

    Example:

    >>> resolve("missing/")
    Traceback (most recent call last):
    ...
    kd_keras.errors.MissingFileError: missing/: no such file or folder
    """
    if not os.path.exists(path):
        raise MissingFileError(f"{path}: no such file or folder")
    if not (os.path.isfile(path) or os.path.isdir(path)):
        raise UsageError(f"{path}: not a regular file or a folder")
    if quantization != "none" and (runtime != "tflite" or os.path.isfile(path)):
        raise UsageError(
            f"--quantization {quantization}: chooses among the TFLite files of an export "
            "folder; give the folder with --runtime tflite")
    if os.path.isfile(path):
        if not path.endswith(".tflite"):
            raise UsageError(
                f"{path}: not a .tflite file, SavedModel or export folder")
        if runtime == "saved_model":
            raise UsageError(f"--runtime saved_model: {path} is a TFLite file")
        return "tflite", path
    export_dir = export_folder(path)
    if export_dir is not None:
        return _from_report(export_dir, runtime, quantization)
    version = path if os.path.isfile(os.path.join(path, "saved_model.pb")) else None
    version = version or _latest_version(path) or _one_models_latest_version(path)
    if version is None:
        raise UsageError(
            f"{path}: holds no report.json, SavedModel or .tflite file")
    if version != path:  # Found by listing: never trusted.
        from kd_keras.export.safe_reading import check_inside

        check_inside(path, version, os.path.relpath(version, path), root_name=path)
    if runtime == "tflite":
        raise UsageError(f"--runtime tflite: {path} is a SavedModel")
    return "saved_model", version


def _text_runtime(runtime, path):
    """The loaded runtime of `export.runtimes` for the raw-text signature of
    the artifact at `path` (the one `verify` runs)."""
    from kd_keras.errors import KdKerasError
    from kd_keras.export.runtimes import MissingSignatureError
    from kd_keras.export.runtimes import load_runtime

    kind = "SavedModel" if runtime == "saved_model" else "TFLite model"
    try:
        return load_runtime(runtime, path, TEXT_SIGNATURE)
    except MissingSignatureError:
        if runtime == "tflite":
            raise UsageError(
                f"{path}: has no {TEXT_SIGNATURE} signature; predict runs the "
                "model_text*.tflite files (a MediaPipe model.tflite runs in MediaPipe's "
                "TextClassifier)") from None
        raise UsageError(f"{path}: has no {TEXT_SIGNATURE} signature (predict classifies "
                         f"sentences); for a text model, {REEXPORT}") from None
    except KdKerasError:
        raise
    except Exception as e:
        raise DataError(f"{path}: cannot load the {kind} ({one_line(e)})") from None


def _labels_beside(path, num_classes):
    """Class names from the TFLite sidecar, when the model has no `classes`."""
    from kd_keras.export.safe_reading import read_json_file

    sidecar = sidecar_path(path)
    if not os.path.lexists(sidecar):
        return None
    labels = read_json_file(sidecar).get("labels")  # Capped, never a FIFO.
    if labels is None:
        return None
    if not (isinstance(labels, list) and len(labels) == num_classes
            and all(isinstance(name, str) for name in labels)):
        raise DataError(
            f"{sidecar}: labels: expected {num_classes} class names, got {labels!r:.80}")
    return labels


def _checked_sentences(sentences):
    """The sentences as str, each valid UTF-8 (a command line carries
    undecodable bytes as surrogate escapes)."""
    checked = []
    for i, sentence in enumerate(sentences, 1):
        try:
            if isinstance(sentence, bytes):
                sentence = sentence.decode("utf-8")
            sentence.encode("utf-8")
        except UnicodeError as e:
            raise DataError(
                f"SENTENCE {i}: not valid UTF-8 text (at position {e.start}); "
                "sentences must be UTF-8") from None
        checked.append(sentence)
    return checked


def read_sentences(stream):
    """The non-blank lines of a binary `stream` (standard input), without
    their line ends, each valid UTF-8 (`kd_keras.data.text_lines`).

    Example:

    >>> import io
    >>> read_sentences(io.BytesIO(b"\\xef\\xbb\\xbfgreat film\\r\\n\\n  dull \\n"))
    ['great film', '  dull ']
    """
    from kd_keras.data.text_lines import decode_lines

    sentences = [line for line in decode_lines(stream, "standard input", "sentences")
                 if line.strip()]
    if not sentences:
        raise DataError("standard input: no sentences (one per line)")
    return sentences


def _with_stdin(sentences):
    """The command line's sentences, checked as numbered there, with `-`
    replaced by the lines of standard input. A blank one is refused, as
    standard input's blank lines are skipped: typed as an argument, it is
    likely an unset shell variable, not a sentence to classify."""
    sentences = _checked_sentences(sentences)
    for i, sentence in enumerate(sentences, 1):
        if not sentence.strip():
            raise UsageError(f"SENTENCE {i}: blank; give the text to classify")
    if sentences.count(STDIN) > 1:
        raise UsageError(f"SENTENCE: {STDIN} (standard input) can be given once")
    if STDIN not in sentences:
        return sentences
    if sys.stdin is None:
        raise UsageError(f"SENTENCE: {STDIN} reads standard input, which is closed")
    try:
        piped = read_sentences(sys.stdin.buffer)
    except OSError as e:
        raise DataError(f"standard input: cannot be read ({e.strerror or e})") from None
    i = sentences.index(STDIN)
    return [*sentences[:i], *piped, *sentences[i + 1:]]


def predictions(path, sentences, runtime=None, quantization="none"):
    """Classifies raw sentences with an exported model, tokenizer inside.

    Args:
        path: an export folder, a `kd-keras distill` output, a SavedModel
            (or its model folder) or a `model_text*.tflite` file.
        sentences: the sentences (`str`, or UTF-8 `bytes`).
        runtime: `"saved_model"` or `"tflite"` for a folder (default: the
            SavedModel).
        quantization: which TFLite file of an export folder.

    Returns:
        A list of `(class name, probability)`, one per sentence.

    Raises:
        UsageError: no sentences, or `path` holds no raw-text model.

    Example:

    >>> predictions("runs/demo", ["a gorgeous film"])  # doctest: +SKIP
    [('pos', 0.97)]
    """
    sentences = _checked_sentences(sentences)
    if not sentences:
        raise UsageError("SENTENCE: no sentences to classify")
    return [answer for batch in _classify(*resolve(path, runtime, quantization), sentences)
            for answer in batch]


def _classify(runtime, model_path, sentences):
    """`predictions` on a resolved artifact and checked sentences, one list
    of answers per batch of `BATCH` sentences as each is done (so that a
    long standard input shows its answers as it goes)."""
    import numpy as np

    names = None
    with _text_runtime(runtime, model_path) as model:
        for start in range(0, len(sentences), BATCH):
            out = model.outputs({"text": np.array(sentences[start:start + BATCH], dtype=object)})
            probabilities = np.asarray(out["probabilities"], np.float64)
            ids = probabilities.argmax(-1)
            if "classes" in out:
                classes = [c.decode("utf-8") if isinstance(c, bytes) else str(c)
                           for c in np.asarray(out["classes"])]
            else:
                if names is None:
                    numbered = [str(i) for i in range(probabilities.shape[-1])]
                    names = (_labels_beside(model_path, len(numbered)) if runtime == "tflite"
                             else None) or numbered
                classes = [names[i] for i in ids]
            yield [(c, float(probabilities[i, ids[i]])) for i, c in enumerate(classes)]


# What would break a sentence's line or its tab-separated field, written as
# Python writes it in a string literal (so a backslash is one too).
_FIELD_ESCAPES = {ord("\\"): "\\\\", ord("\t"): "\\t", ord("\n"): "\\n",
                  ord("\r"): "\\r"}
_FIELD_ESCAPES.update({ord(c): ascii(c)[1:-1] for c in
                       "\v\f\x1c\x1d\x1e\x85\u2028\u2029"})


def as_field(sentence):
    """`sentence` as the last field of a tab-separated line: backslashes,
    tabs and line breaks (every one `str.splitlines` splits at) escaped.

    Example:

    >>> print(as_field("good\\tfilm\\nbad \\\\ plot"))
    good\\tfilm\\nbad \\\\ plot
    """
    return sentence.translate(_FIELD_ESCAPES)


def run(args):
    from kd_keras.export.formats import QUANTIZATIONS
    from kd_keras.export.formats import check_choices

    (quantization,) = check_choices([args.quantization], "--quantization", QUANTIZATIONS)
    # The artifact first: a bad path is reported before standard input is read.
    runtime, model_path = resolve(args.artifact, args.runtime, quantization)
    sentences = _with_stdin(args.sentences)
    try:
        done = 0
        for batch in _classify(runtime, model_path, sentences):
            for (name, probability), sentence in zip(batch, sentences[done:]):
                print(f"{name}\t{probability:.3f}\t{as_field(sentence)}")
            done += len(batch)
            sys.stdout.flush()
    except BrokenPipeError:  # e.g. `| head`: the reader has what it wanted.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
