"""The built-in demo: `python -m kd_keras.demo` (what `make demo` runs).

Runs `DEMO_CONFIG_PATH` (`kd_keras/demo.yaml`, which the repository's
`configs/demo.yaml` links to): the shipped movie-review sentences (Pang &
Lee, 2005), a pretrained all-MiniLM-L6-v2
teacher whose top 3 blocks and task head are fine-tuned on the training
split (`kd_keras.teachers.TopLayerTuner`: the 3 frozen blocks run once per
sentence), then the default recipe (`kd_keras.config.recipe`): a ~2.2M-parameter
dilated CNN distilled from the teacher's logits and pooled sentence vector,
on the sentences and 10 teacher-labelled copies of each; the same CNN
trained on labels alone, and the export to SavedModel, TFLite
(float and int8) and ONNX, each verified in its own runtime. Prints a table:
teacher, student alone, distilled student — accuracy, parameters, size,
latency — and the time each stage took (the docs' results pages have the
measured figures).

Example:

```bash
python -m kd_keras.demo                          # full demo, output in runs/demo
python -m kd_keras.demo --max-examples 300 --epochs 2 --output runs/quick
```
"""

import argparse
import os
import shlex
import sys

# The config itself ships beside this module as package data; the
# repository's `configs/demo.yaml` is a link to it.
DEMO_CONFIG_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo.yaml")


def demo_config(output=None, max_examples=None, epochs=None, verbose=1):
    """The validated demo config, optionally scaled down.

    Args:
        output: output folder (default `runs/demo`).
        max_examples: cap per split, for a quick run.
        epochs: distillation / baseline epochs.
        verbose: 0 silences progress bars.

    Returns:
        A `kd_keras.config.RunConfig` for `kd_keras.pipeline.run_distill`.

    Example:

    >>> demo_config(max_examples=100).data.max_examples
    100
    """
    from kd_keras.config import parse_config
    from kd_keras.config import read_yaml

    raw = read_yaml(DEMO_CONFIG_PATH)
    if output is not None:
        raw["output"] = output
    if max_examples is not None:
        raw["data"]["max_examples"] = max_examples
    if epochs is not None:
        raw.setdefault("distill", {})["epochs"] = epochs
    raw["verbose"] = verbose
    return parse_config(raw, base_dir=os.getcwd())


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m kd_keras.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default=None, help="output folder (default runs/demo)")
    parser.add_argument("--max-examples", type=int, default=None, help="cap per split, for a quick run")
    parser.add_argument("--epochs", type=int, default=None, help="distillation epochs")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's native log lines (hidden by default)")
    args = parser.parse_args(argv)
    from kd_keras.cli.quiet import native_logs_hidden
    from kd_keras.errors import KdKerasError
    from kd_keras.errors import one_line

    try:  # As the `kd-keras` commands: quiet, and one line for bad input.
        with native_logs_hidden(enabled=not args.verbose):
            return _run(args)
    except KdKerasError as e:
        print(f"{parser.prog}: error: {one_line(e)}", file=sys.stderr)
        return 2


def _run(args):
    from kd_keras.pipeline import run_distill
    from kd_keras.pipeline.summary import run_summary

    cfg = demo_config(args.output, args.max_examples, args.epochs)
    results = run_distill(cfg)
    print()
    print("Movie-review sentiment (rt-polarity test split, "
          f"{results['details']['splits']['test']} sentences):")
    print(run_summary(results))
    print(f"\nresults: {os.path.abspath(cfg.output)}/results.json")
    print("\nNext, classify your own sentences with the exported model (tokenizer inside):")
    print(f"  {shlex.quote(command_path())} predict {shlex.quote(cfg.output)} "
          "\"a gorgeous, witty, moving film\" \"dull and far too long\"")
    return 0


def command_path():
    """How a shell here runs `kd-keras`: by name when that name finds the
    one beside this Python, else by its path (a virtual environment that is
    not activated, as `make demo` leaves `.venv`).

    Returns:
        `"kd-keras"`, or its path, relative when under the current folder.
    """
    import shutil

    beside = os.path.join(os.path.dirname(sys.executable), "kd-keras")
    found = shutil.which("kd-keras")
    if not os.path.isfile(beside) or (found and os.path.samefile(found, beside)):
        return "kd-keras"
    relative = os.path.relpath(beside)
    return relative if not relative.startswith(os.pardir) else beside


if __name__ == "__main__":
    sys.exit(main())
