"""MediaPipe's text classifier in a child process cut off from the network.

MediaPipe's native library sends a usage log to Google
(`play.googleapis.com`) when a Tasks classifier is created, and its Python
API offers no switch to stop it. kd_keras runs the classifier (to verify a
MediaPipe artifact) in a child process that first moves into a network
namespace of its own, with no interface but a loopback that is down, so
the log never leaves the machine. Linux allows this to an ordinary user
through a user namespace; where the system refuses it (another OS, or
unprivileged user namespaces turned off), `cut_off_network` says so and
the parent warns (`kd_keras.export.runtimes.MediaPipeRuntime`).

The parent speaks to the child in JSON lines: it starts
`python -m kd_keras.export.mediapipe_child MODEL.tflite`, reads
`{"ready": {"isolated": ...}}` (or `{"error": ...}`), then sends
`{"texts": [...]}` for probabilities (and the class names), or
`{"time": [...], "runs": ...}` to time calls inside the child, where no
pipe adds to them.

Example:

>>> import json, subprocess, sys
>>> child = subprocess.run([sys.executable, "-m", "kd_keras.export.mediapipe_child",
...                         "missing.tflite"], capture_output=True, text=True)
>>> sorted(json.loads(child.stdout.splitlines()[0]))
['error']
"""

import ctypes
import json
import os
import sys

# From <sched.h>.
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def cut_off_network():
    """Moves this process into a new network namespace (no usable interface).

    Must run before the process starts a thread (a user namespace needs a
    single-threaded process): before NumPy or MediaPipe is imported.

    Returns:
        Whether the process is now cut off from the network.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if os.geteuid() == 0:
            return libc.unshare(CLONE_NEWNET) == 0
        uid, gid = os.geteuid(), os.getegid()
        if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
            return False
        # Map the user to itself, so that files stay readable as before.
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
    except (OSError, AttributeError):
        return False
    return True


def _serve(path, isolated, reply):
    # MediaPipe's Tasks package imports TensorFlow only to mark its docs,
    # and does without it: 0.8 s to start rather than 5.5 s here.
    sys.modules.setdefault("tensorflow", None)
    import numpy as np

    from kd_keras.timing import time_calls

    try:
        from mediapipe.tasks.python.core.base_options import BaseOptions
        from mediapipe.tasks.python.text import text_classifier

        classifier = text_classifier.TextClassifier.create_from_options(
            text_classifier.TextClassifierOptions(
                base_options=BaseOptions(model_asset_path=path)))
    except Exception as e:  # The parent reports it as the artifact's failure.
        reply({"error": f"{type(e).__name__}: {e}"})
        return

    names = {}

    def classify(texts):
        rows = []
        for text in texts:
            categories = classifier.classify(text).classifications[0].categories
            row = np.zeros(len(categories), np.float32)
            for category in categories:
                row[category.index] = category.score
                names[category.index] = category.category_name
            rows.append(row)
        return np.stack(rows)

    reply({"ready": {"isolated": isolated}})
    try:
        for line in sys.stdin:
            request = json.loads(line)
            if "texts" in request:
                # float32 -> Python float -> JSON text -> float32 is exact.
                probabilities = classify(request["texts"]).tolist()
                reply({"probabilities": probabilities,
                       "class_names": [names[i] for i in sorted(names)]})
            else:
                texts = request["time"]
                ms = time_calls(lambda: classify(texts), request["runs"],
                                max_seconds=request["max_seconds"], warmup=request["warmup"])
                reply({"milliseconds": ms.tolist()})
    finally:
        classifier.close()


def main(argv=None):
    """The child's entry point: `python -m kd_keras.export.mediapipe_child PATH`."""
    isolated = cut_off_network()  # First: no thread has started yet.
    (path,) = sys.argv[1:] if argv is None else argv
    # Replies go to a private copy of stdout; what native code prints goes
    # to stderr, never into the replies.
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)

    def reply(message):
        replies.write(json.dumps(message) + "\n")
        replies.flush()

    if not os.path.isfile(path):
        reply({"error": f"{path}: not found"})
        return
    _serve(path, isolated, reply)


if __name__ == "__main__":
    main()
