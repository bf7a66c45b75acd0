"""`kd-keras export MODEL.keras OUT_DIR`: export and verify a trained model."""

import contextlib
import os

from kd_keras.cli.verify import whole_number
from kd_keras.errors import DataError
from kd_keras.errors import UsageError
from kd_keras.export.formats import FORMATS
from kd_keras.export.formats import QUANTIZATIONS
from kd_keras.export.formats import check_choices
from kd_keras.export.formats import require_format


def register(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="export a .keras model to SavedModel / TFLite / ONNX and verify it",
        description=(
            "Export MODEL.keras (loaded with safe_mode=True) to every format and "
            "quantization asked for, run each artifact in its own runtime against "
            "the Keras logits, and write OUT_DIR/report.json, report.md and "
            "report.png. The export is atomic: on any failure nothing is left. "
            "The model must take numeric inputs and return one output, "
            "[batch, classes] logits; data must be finite."
        ),
    )
    parser.add_argument("model", metavar="MODEL.keras", help="the trained model")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="export directory")
    parser.add_argument(
        "--formats",
        nargs="+",
        default=list(FORMATS),
        metavar="FORMAT",
        help=f"any of {', '.join(FORMATS)} (default: all)",
    )
    parser.add_argument(
        "--quantization",
        nargs="+",
        default=["none"],
        metavar="Q",
        help=f"any of {', '.join(QUANTIZATIONS)} (default: none); int8 needs "
        "--representative-data",
    )
    parser.add_argument(
        "--representative-data",
        metavar="FILE",
        help="calibration inputs for int8: .npy (single input) or .npz keyed by "
        "input name",
    )
    parser.add_argument(
        "--validation-data",
        metavar="FILE.npz",
        help="validation inputs (keys: input names, or x) and labels (key y); "
        "default: the representative data, else 64 seeded random inputs (logits "
        "compared, no accuracy)",
    )
    parser.add_argument(
        "--labels",
        nargs="+",
        metavar="NAME",
        help="class names in class-id order, or one path to a text file with "
        "one name a line",
    )
    parser.add_argument(
        "--vocabulary",
        metavar="VOCAB.txt",
        help="the WordPiece vocab.txt a text model's ids come from: also writes the "
        "raw-text artifacts (the SavedModel's serving_text, tflite/model_text*.tflite "
        "and MediaPipe's mediapipe/model*.tflite), verified on --text-data",
    )
    parser.add_argument(
        "--text-data",
        metavar="FILE",
        help="sentences for the raw-text artifacts, one a line, each optionally "
        "followed by a TAB and its label (a class id, or a name of --labels)",
    )
    parser.add_argument(
        "--text-ids",
        metavar="FILE",
        help="the ids your training pipeline made for the --text-data sentences (.npy, "
        "or .npz keyed by input name): the Keras model reads them, so a tokenizer or "
        "--vocabulary that differs from training fails the export; without it the "
        "Keras model reads the exported tokenizer's own ids",
    )
    parser.add_argument("--name", help="model name in the TF Serving layout, the name "
                        "clients call (letters, digits, _ . -); default: the Keras "
                        "model's name")
    parser.add_argument(
        "--integer-io",
        action="store_true",
        help="int8 TFLite with int8 input and output tensors",
    )
    parser.add_argument(
        "--select-tf-ops",
        action="store_true",
        help="allow Flex (select TF) ops in TFLite; off by default",
    )
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (7..18)")
    parser.add_argument(
        "--latency-runs", type=whole_number, default=30, help="timed calls per batch size"
    )
    parser.add_argument(
        "--allow-mismatch",
        action="store_true",
        help="keep the export even if an artifact misses its tolerance",
    )
    parser.set_defaults(func=run)
    return parser


def _read_labels(values):
    """`--labels`: the names given, or those of a file holding one a line."""
    if values and len(values) == 1 and os.path.isfile(values[0]):
        from kd_keras.data.text_lines import read_lines

        return [line for line in read_lines(values[0], "class names (--labels)")
                if line.strip()]
    return values


def _text_export(args, specs, formats, labels, num_classes):
    """`export_model`'s `TextExport` for `--vocabulary` (`None` without)."""
    if args.vocabulary is None:
        for option, value in (("--text-data", args.text_data), ("--text-ids", args.text_ids)):
            if value is not None:
                raise UsageError(f"{option}: needs --vocabulary (the vocab.txt of the ids)")
        return None
    if args.text_data is None:
        raise UsageError("--vocabulary: needs --text-data (sentences to verify the "
                         "raw-text artifacts on)")
    if len(specs) != 1 or specs[0].dtype not in ("int32", "int64") or len(specs[0].shape) != 2:
        raise UsageError(f"--vocabulary: {args.model} is not a text model (one int "
                         "[batch, length] input of token ids)")
    from kd_keras.data.text_lines import read_text_data
    from kd_keras.data.tokenizer import load_vocabulary
    from kd_keras.export import TextExport
    from kd_keras.export import WordPiecePreprocessor

    load_vocabulary(args.vocabulary)  # one line for a missing or binary file
    texts, y = read_text_data(args.text_data, labels, num_classes)
    preprocessor = WordPiecePreprocessor(args.vocabulary, specs[0].shape[1],
                                         input_name=specs[0].name)
    reference = None
    if args.text_ids is not None:
        from kd_keras.export.inputs import as_input_dict
        from kd_keras.export.inputs import load_array_file

        what = f"--text-ids {args.text_ids!r}"
        reference = as_input_dict(load_array_file(args.text_ids, what), specs, what)
        rows = len(next(iter(reference.values())))
        if rows != len(texts):  # Checked here to name the two files.
            raise DataError(f"{what}: {rows} rows for the {len(texts)} sentences of "
                            f"--text-data {args.text_data!r}")
    return TextExport(preprocessor=preprocessor, tflite="tflite" in formats,
                      validation_text=(texts, y), reference_inputs=reference,
                      mediapipe_vocabulary=args.vocabulary if "tflite" in formats else None)


def run(args):
    formats = check_choices(" ".join(args.formats), "--formats", FORMATS)
    quantization = check_choices(
        " ".join(args.quantization), "--quantization", QUANTIZATIONS
    )
    from kd_keras.export.verify import check_latency_runs

    latency_runs = check_latency_runs(args.latency_runs, "--latency-runs")
    from kd_keras.export import export_model
    from kd_keras.export import load_model
    from kd_keras.export.inputs import as_input_dict
    from kd_keras.export.inputs import check_logits_output
    from kd_keras.export.inputs import load_array_file
    from kd_keras.export.inputs import model_input_specs
    from kd_keras.export.onnx import MAX_OPSET

    if not 7 <= args.opset <= MAX_OPSET:
        raise UsageError(f"--opset: must be in 7..{MAX_OPSET}, got {args.opset}")
    if "int8" in quantization and not args.representative_data:
        raise UsageError("--representative-data: required by --quantization int8")
    if args.integer_io and not ("tflite" in formats and "int8" in quantization):
        raise UsageError("--integer-io: applies to the int8 TFLite model only; add "
                         "--formats tflite and --quantization int8")
    if args.vocabulary and not {"saved_model", "tflite"} & set(formats):
        raise UsageError("--vocabulary: the raw-text artifacts are the SavedModel's and "
                         "TFLite's (and MediaPipe's); --formats "
                         f"{' '.join(formats)} makes none")
    for fmt in formats:  # A missing optional package stops before any work.
        require_format(fmt)
    if os.path.isdir(args.model):
        raise UsageError(
            f"{args.model}: is a folder (a SavedModel?); kd-keras export takes a .keras file")
    model = load_model(args.model)
    specs = model_input_specs(model, what=args.model)
    num_classes = check_logits_output(model, what=args.model)
    representative = None
    if args.representative_data:
        what = f"--representative-data {args.representative_data!r}"
        representative = as_input_dict(
            load_array_file(args.representative_data, what), specs, what
        )
    validation = None
    if args.validation_data:
        what = f"--validation-data {args.validation_data!r}"
        data = load_array_file(args.validation_data, what)
        labels = None
        if isinstance(data, dict):
            data = dict(data)
            labels = data.pop("y", data.pop("labels", None))
        validation = (as_input_dict(data, specs, what), labels)
    labels = _read_labels(args.labels)
    text = _text_export(args, specs, formats, labels, num_classes)
    with _naming_out_dir():
        report = export_model(
            model,
            args.out_dir,
            formats=formats,
            quantization=quantization,
            representative_data=representative,
            validation_data=validation,
            labels=labels,
            name=args.name,
            integer_io=args.integer_io,
            select_tf_ops=args.select_tf_ops,
            opset=args.opset,
            allow_mismatch=args.allow_mismatch,
            latency_runs=latency_runs,
            text=text,
        )
    from kd_keras.export.report import markdown_table

    print(markdown_table(report["artifacts"]))
    saved = next((a["path"] for a in report["artifacts"] if a["format"] == "saved_model"), None)
    if saved is not None:  # The name clients call it by, and where TF Serving looks.
        print(f"TF Serving model {os.path.basename(os.path.dirname(saved))!r}, version "
              f"{os.path.basename(saved)}: {saved}")
    if not (args.validation_data or args.representative_data):
        print("checked on seeded random inputs (no --validation-data or "
              "--representative-data): logits compared, no accuracy")
    if text is not None and text.reference_inputs is None:
        print("raw-text artifacts checked against the Keras model fed by the exported "
              "tokenizer (no --text-ids): a --vocabulary unlike training's shows only in "
              "their accuracy")
    print(f"wrote {os.path.join(args.out_dir, 'report.json')}")
    failed = [a for a in report["artifacts"] if not a["passed"]]
    if failed:
        print(
            f"{len(failed)} artifact(s) missed their tolerance (kept: "
            "--allow-mismatch)"
        )
    return 0


@contextlib.contextmanager
def _naming_out_dir():
    """`export_model`'s errors about its `out_dir` argument, naming the
    command's `OUT_DIR` instead."""
    try:
        yield
    except UsageError as e:
        message = str(e)
        if not message.startswith("out_dir: "):
            raise
        raise UsageError("OUT_DIR: " + message[len("out_dir: "):]) from None
