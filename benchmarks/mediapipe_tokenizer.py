"""Where MediaPipe's tokenizer and the pipeline's give different ids.

    python benchmarks/mediapipe_tokenizer.py                  # probes + data sets
    python benchmarks/mediapipe_tokenizer.py --run runs/demo  # + prediction flips

MediaPipe's `TextClassifier` tokenizes raw text natively
(`BertPreprocessorCalculator`); the student was trained on the pipeline's
ids (`WordPieceEncoder`, KerasHub's `BertTokenizer`). A classifier cannot
output ids, so MediaPipe's are read through an *echo model*: a MediaPipe
text classifier (same metadata as the shipped artifact, same vocabulary)
whose "scores" are its inputs, `input_word_ids` then `input_mask`, as
float32 (exact below 2^24). MediaPipe returns every class's score, so class
`i` gives the id at position `i`.

The script prints and stores (`results/mediapipe_tokenizer.json`):

- a table of probes, one per kind of input (case, accents, punctuation,
  symbols, CJK, emoji, spaces, control characters, over-long input), with
  both tokenizations, whether the ids differ and the cause, read from the
  two tokenizers' sources (see `docs/mediapipe.md`);
- for the movie reviews (all 10,662) and AG News (the 7,600 test snippets),
  how many sentences get different ids;
- with `--run DIR` (a `kd-keras distill` output with `student.keras`), how
  many of the test sentences with different ids change the student's
  prediction (the student fed MediaPipe's ids against the pipeline's).

Example:

>>> [kind for kind, _, _ in PROBES][:3]
['ASCII upper case', 'accents (precomposed)', 'accents (combining mark)']
>>> differing_rows(np.array([[1, 2], [1, 3]]), np.array([[1, 2], [1, 4]])).tolist()
[1]
"""

import argparse
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from arguments import add_output_arguments  # noqa: E402
from arguments import results_path  # noqa: E402
from arguments import write_json  # noqa: E402

SEQUENCE_LENGTH = 64
# (kind, probe, why the ids agree or differ): the why is read from the two
# tokenizers' sources (docs/mediapipe.md); whether they differ is measured.
PROBES = [
    ("ASCII upper case", "What a GREAT Film",
     "both lowercase ASCII letters"),
    ("accents (precomposed)", "a naïve café résumé",
     "neither strips accents (KerasHub's BertTokenizer has strip_accents=False, MediaPipe "
     "does no normalisation): accented words not in the vocabulary are [UNK] in both"),
    ("accents (combining mark)", "cafe\u0301 e\u0301 ve\u0301rite\u0301",
     "the pipeline's case folding (NFKC) composes e + U+0301 into é, MediaPipe keeps the "
     "combining mark; MiniLM's vocabulary (built with accents stripped) has neither form, "
     "so both give [UNK]"),
    ("non-ASCII upper case", "ÉCOLE Москва ΑΘΗΝΑ",
     "MediaPipe lowercases ASCII letters only (absl::AsciiStrToLower); the pipeline "
     "case-folds all of Unicode"),
    ("German sharp s", "Straße STRASSE",
     "the pipeline's case folding (NFKC_Casefold) turns ß into ss; MediaPipe keeps ß"),
    ("ASCII punctuation", "wow!!! (really?) -- yes; no: \"quoted\" 'single'",
     "both split on every ASCII punctuation character"),
    ("Unicode punctuation", "“smart quotes” — dash ¿qué? «guillemets»",
     "both split on Unicode punctuation (category P)"),
    ("compatibility characters", "wait… 9 ½ weeks, the ﬁlm is ｇｒｅａｔ™",
     "the pipeline's case folding (NFKC) rewrites … as ..., ½ as 1⁄2, the ﬁ ligature as fi, "
     "full-width letters as ASCII and ™ as tm; MediaPipe keeps them"),
    ("symbols", "costs $5 or €5, +1 ©2024 50% 3×4",
     "ASCII symbols split in both; other symbols (category S) stay in the word in both"),
    ("CJK ideographs", "映画はとても良かった 电影很好",
     "both split CJK ideographs into single characters; kana stay in the word in both"),
    ("emoji", "great film 😀👍 loved it❤️",
     "emoji are not in the vocabulary: [UNK] in both"),
    ("no-break and other spaces", "zero\u00a0width\u2009thin\u3000ideographic",
     "neither splits on non-ASCII spaces (RE2's \\s is ASCII white space in both); the "
     "joined word is [UNK] in both"),
    ("zero-width and control characters", "zero\u200bwidth soft\u00adhyphen bell\x07",
     "the pipeline splits words at control and format characters (Cc, Cf: zero-width space, "
     "soft hyphen, BEL); MediaPipe keeps them in the word, which becomes [UNK]"),
    ("tabs and newlines", "line one\tline two\nline three\r\nfour",
     "ASCII white space in both"),
    ("long word", "a " + "x" * 120 + " b",
     "both map a word of more than 100 bytes to [UNK]"),
    ("over-long input", " ".join(["word"] * 100),
     "both truncate to the sequence length and keep [SEP] last"),
    ("empty", "", "both give [CLS] [SEP]"),
]


def differing_rows(ours, theirs):
    """Indices of the rows where two `[n, L]` id arrays differ."""
    return np.flatnonzero(np.any(np.asarray(ours) != np.asarray(theirs), axis=1))


class MediaPipeIds:
    """MediaPipe's own tokenization of raw text, through an echo model.

    Args:
        vocabulary: the `vocab.txt` path.
        sequence_length: `L`, the ids per sentence.
    """

    def __init__(self, vocabulary, sequence_length):
        import keras
        import tensorflow as tf
        from mediapipe.tasks.python.text import TextClassifier

        from kd_keras.export import mediapipe_metadata
        from kd_keras.export.tflite import convert_saved_model

        self.length = sequence_length

        def echo(input_word_ids, input_mask, input_type_ids):
            del input_type_ids
            both = tf.concat([input_word_ids, input_mask], axis=-1)
            return {mediapipe_metadata.OUTPUT: tf.cast(both, tf.float32)}

        archive = keras.export.ExportArchive()
        archive.add_endpoint("serving_default", echo, input_signature=[
            tf.TensorSpec([1, sequence_length], tf.int32, name=n) for n in mediapipe_metadata.INPUTS])
        self._folder = tempfile.mkdtemp(prefix="mediapipe_echo_")
        archive.write_out(os.path.join(self._folder, "sm"), verbose=False)
        flatbuffer = convert_saved_model(os.path.join(self._folder, "sm"))
        names = [str(i) for i in range(2 * sequence_length)]
        path = os.path.join(self._folder, "echo.tflite")
        with open(path, "wb") as f:
            f.write(mediapipe_metadata.with_metadata(flatbuffer, vocabulary, names))
        self._classifier = TextClassifier.create_from_model_path(path)

    def __call__(self, texts):
        """Returns `(ids, mask)`, each int32 `[len(texts), L]`."""
        rows = []
        for text in texts:
            row = np.zeros(2 * self.length, np.int64)
            for c in self._classifier.classify(text).classifications[0].categories:
                row[c.index] = int(round(c.score))
            rows.append(row)
        rows = np.array(rows, np.int32).reshape(len(texts), 2 * self.length)
        return rows[:, :self.length], rows[:, self.length:]

    def close(self):
        self._classifier.close()


def tokens(ids, vocabulary):
    """The tokens of one id row, `[CLS]` to `[SEP]` (padding left out)."""
    out = [vocabulary[i] for i in ids]
    while out and out[-1] == "[PAD]":
        out.pop()
    return out


def probe_table(ours, theirs, vocabulary):
    rows = []
    for (kind, text, why), a, b in zip(PROBES, ours, theirs):
        rows.append({"kind": kind, "text": text, "same_ids": bool(np.array_equal(a, b)),
                     "pipeline": tokens(a, vocabulary), "mediapipe": tokens(b, vocabulary),
                     "why": why})
    return rows


def print_probes(rows):
    print(f"{'kind':34} {'same':5} pipeline | mediapipe")
    for r in rows:
        shown = "=" if r["same_ids"] else " ".join(r["mediapipe"][1:-1])
        print(f"{r['kind']:34} {str(r['same_ids']):5} {' '.join(r['pipeline'][1:-1])[:60]} | "
              f"{shown[:60]}")
        print(f"{'':40} why: {r['why']}")


def dataset_rows(encoder, mediapipe):
    from kd_keras.data import load_builtin

    results = {}
    for name, texts in (
        ("rt_polarity (all)", _all_texts(load_builtin("rt_polarity"))),
        ("ag_news (test)", list(load_builtin("ag_news").texts["test"])),
    ):
        ours, (theirs, _) = encoder(texts), mediapipe(texts)
        rows = differing_rows(ours, theirs)
        non_ascii = sum(not texts[i].isascii() for i in rows)
        results[name] = {"sentences": len(texts), "different_ids": int(len(rows)),
                         "different_ids_non_ascii": int(non_ascii),
                         "examples": [texts[i] for i in rows[:8]]}
        print(f"{name}: {len(rows)} of {len(texts)} sentences get different ids "
              f"({non_ascii} of them have non-ASCII characters)")
    return results


def _all_texts(dataset):
    return [t for split in ("train", "validation", "test") for t in dataset.texts[split]]


def prediction_flips(run_dir, vocabulary):
    """The test sentences whose ids differ, and how many change the student's
    prediction."""
    from kd_keras.data import WordPieceEncoder
    from kd_keras.data import load_builtin
    from kd_keras.files.models import load_model

    student = load_model(os.path.join(run_dir, "student.keras"))
    length = int(student.inputs[0].shape[1])
    texts = list(load_builtin("rt_polarity").texts["test"])
    ours = WordPieceEncoder(vocabulary, length)(texts)
    mediapipe = MediaPipeIds(vocabulary, length)
    theirs = mediapipe(texts)[0]
    mediapipe.close()
    rows = differing_rows(ours, theirs)
    a = np.asarray(student.predict(ours, verbose=0)).argmax(-1)
    b = np.asarray(student.predict(theirs, verbose=0)).argmax(-1)
    flipped = [texts[i] for i in np.flatnonzero(a != b)]
    print(f"{os.path.basename(os.path.normpath(run_dir))}: {len(rows)} of {len(texts)} test sentences get different ids; "
          f"{len(flipped)} change the student's prediction")
    return {"run": os.path.basename(os.path.normpath(run_dir)), "test_sentences": len(texts), "different_ids": int(len(rows)),
            "prediction_changed": len(flipped), "changed": flipped}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_output_arguments(parser, "mediapipe_tokenizer")
    parser.add_argument("--run", default=None, metavar="DIR",
                        help="a kd-keras distill output: count prediction flips")
    parser.add_argument("--vocabulary", default=None, help="vocab.txt (default: MiniLM's)")
    args = parser.parse_args(argv)

    from kd_keras.data import WordPieceEncoder
    from kd_keras.data.tokenizer import load_vocabulary
    from kd_keras.teachers import minilm_dir

    vocabulary = args.vocabulary or os.path.join(minilm_dir(), "vocab.txt")
    tokens_list = load_vocabulary(vocabulary)
    encoder = WordPieceEncoder(vocabulary, SEQUENCE_LENGTH)
    mediapipe = MediaPipeIds(vocabulary, SEQUENCE_LENGTH)
    texts = [text for _, text, _ in PROBES]
    theirs, mask = mediapipe(texts)
    ours = encoder(texts)
    probes = probe_table(ours, theirs, tokens_list)
    print_probes(probes)
    # MediaPipe pads with id 0 and mask 0 after [SEP], as the pipeline does.
    mask_matches = bool(np.array_equal(mask, (theirs != 0).astype(np.int32)))
    print(f"MediaPipe's mask is 1 exactly on the non-zero ids: {mask_matches}")
    payload = {"sequence_length": SEQUENCE_LENGTH, "vocabulary": os.path.basename(vocabulary),
               "mask_is_nonzero_ids": mask_matches, "probes": probes,
               "datasets": dataset_rows(encoder, mediapipe)}
    mediapipe.close()
    if args.run:
        payload["prediction_flips"] = prediction_flips(args.run, vocabulary)
    write_json(results_path(args), payload)
    print(f"wrote {results_path(args)}")


if __name__ == "__main__":
    main()
