"""A TFLite-runnable text normalizer that splits and case-folds like KerasHub.

The pipeline tokenizes with KerasHub's `BertTokenizer(lowercase=True)`
(`kd_keras.data.WordPieceEncoder`): split on whitespace, control characters,
punctuation and CJK ideographs (keeping the last two as words), NFKC
case-fold each word, then WordPiece. Case folding and regex splitting have no
TFLite kernel, but TF-Text's `FastBertNormalize` custom op applies any
code point -> string table stored in its model buffer. This module derives
that table from KerasHub's own ops, one code point at a time:

- a dropped delimiter (whitespace, control or format character) -> `" "`;
- a kept delimiter (punctuation, CJK) -> `" " + fold(c) + " "`;
- any other character -> `fold(c)`;

and replaces whitespace that KerasHub would keep inside a word (e.g. the
no-break space, or the space NFKC puts in `"¨"`) by a private-use character
no vocabulary token contains, so such a word still becomes `[UNK]`. After it,
TF-Text's `WhitespaceTokenize` gives exactly KerasHub's words, and
`FastWordpieceTokenize(no_pretokenization=True)` their ids. The one
difference: NFKC composes a base letter with a combining mark typed
separately (`"e" + U+0301`), which a table per code point cannot (with an
uncased BERT vocabulary both forms give `[UNK]`), and KerasHub drops the
rest of a string after a NUL character, which the table treats as a word
break.

`normalizer_model(mapping)` writes the `FastBertNormalizerModel` flatbuffer
(a darts-clone double-array trie over each code point's UTF-8 bytes, and a
pool of normalized strings).

Example:

>>> model = normalizer_model({"A": "a", "!": " ! "})
>>> isinstance(model, bytes)
True
"""

import functools

import numpy as np

# The FastBertNormalizer data word (tensorflow_text fast_bert_normalizer.h):
# bit 30 marks a changed code point, bits 6..29 the offset of its normalized
# string in the pool, bits 0..5 the string's length in bytes.
_CHANGED = 1 << 30
_LENGTH_BITS = 6
_MAX_LENGTH = (1 << _LENGTH_BITS) - 1
_MAX_OFFSET = (1 << (30 - _LENGTH_BITS)) - 1
_SURROGATES = range(0xD800, 0xE000)
_PRIVATE_USE = range(0xE000, 0xF900)


def _trie_units(keys_values):
    """A darts-clone double array for `{utf-8 bytes: int value}`.

    A node at slot `s` with children at `base ^ label` stores
    `(s ^ base) << 10 | has_value << 8 | its own label`; its value sits at
    slot `base` as `0x80000000 | value` (darts_clone_trie_wrapper.h).
    Bases are unique, so a slot belongs to one parent only.
    """
    root = {}
    for key, value in keys_values.items():
        node = root
        for byte in key:
            node = node.setdefault(byte, {})
        node[None] = value
    size = 1 << 12
    units = [0] * size
    used = bytearray(size)
    skip = list(range(1, size + 1))  # skip[i]: a slot > i that may be free
    bases = set()

    def free_after(i):  # The first free slot > i (path halving).
        j = skip[i]
        while j < len(used) and used[j]:
            skip[i] = j = skip[j] if skip[j] > j else j + 1
        return j

    def grow(top):
        nonlocal size
        extra = max(top, 2 * size) - size
        used.extend(bytearray(extra))
        units.extend([0] * extra)
        skip.extend(range(size + 1, size + extra + 1))
        size += extra

    used[0] = 1
    queue = [(0, 0, root)]  # (slot, label, node)
    while queue:
        next_queue = []
        for slot, label, node in queue:
            labels = sorted(k for k in node if k is not None)
            has_value = None in node
            wanted = ([0] if has_value else []) + labels
            free = free_after(0)
            while True:
                if free >= size:
                    grow(free + 257)
                base = free ^ wanted[0]
                if base not in bases and all(
                    base ^ l >= size or not used[base ^ l] for l in wanted
                ):
                    break
                free = free_after(free)
            top = max(base ^ l for l in wanted) + 1
            if top > size:
                grow(top)
            bases.add(base)
            offset = slot ^ base
            if offset >= 1 << 21:  # pragma: no cover - a table this size needs no more
                raise ValueError("normalizer table: too large for the trie encoding")
            units[slot] = (offset << 10) | (0x100 if has_value else 0) | label
            if has_value:
                used[base] = 1
                units[base] = 0x80000000 | node[None]
            for l in labels:
                used[base ^ l] = 1
                next_queue.append((base ^ l, l, node[l]))
        queue = next_queue
    last = len(used) - 1
    while not used[last]:
        last -= 1
    return np.asarray(units[: last + 1], np.uint32)


def normalizer_model(mapping):
    """The `FastBertNormalizerModel` flatbuffer for a code point table.

    Args:
        mapping: `{character: normalized string}`; characters not in it are
            kept as they are. `"\\0"` is allowed.

    Returns:
        The model as `bytes`, for
        `tensorflow_text.FastBertNormalizer(model_buffer=...)`.
    """
    import flatbuffers

    pool, where, data = bytearray(), {}, {}
    zero = 0
    for char, normalized in mapping.items():
        encoded = normalized.encode("utf-8")
        if len(encoded) > _MAX_LENGTH:
            raise ValueError(f"normalizer table: {char!r} maps to more than "
                             f"{_MAX_LENGTH} bytes")
        if encoded not in where:
            where[encoded] = len(pool)
            pool += encoded
        offset = where[encoded] if encoded else 0
        if offset > _MAX_OFFSET:  # pragma: no cover
            raise ValueError("normalizer table: string pool too large")
        value = _CHANGED | (offset << _LENGTH_BITS) | len(encoded)
        if char == "\0":
            zero = value
        else:
            data[char.encode("utf-8")] = value
    trie = _trie_units(data)
    builder = flatbuffers.Builder(len(trie) * 4 + len(pool) + 1024)
    pool_vector = builder.CreateNumpyVector(np.frombuffer(bytes(pool) or b"\0", np.uint8))
    trie_vector = builder.CreateNumpyVector(trie)
    builder.StartObject(4)
    builder.PrependBoolSlot(0, False, False)  # lower_case_nfd_strip_accents
    builder.PrependUOffsetTRelativeSlot(1, trie_vector, 0)
    builder.PrependInt32Slot(2, zero, 0)
    builder.PrependUOffsetTRelativeSlot(3, pool_vector, 0)
    builder.Finish(builder.EndObject())
    return bytes(builder.Output())


def whitespace_characters():
    """The code points TF-Text's `WhitespaceTokenizer` splits on."""
    import tensorflow as tf
    import tensorflow_text as tf_text

    chars = [chr(c) for c in range(1, 0x110000) if c not in _SURROGATES]
    text = tf.constant([f"a{c}a" for c in chars])
    counts = tf_text.WhitespaceTokenizer().split(text).row_lengths().numpy()
    return {c for c, n in zip(chars, counts) if n != 1}


def sentinel_for(vocabulary):
    """A private-use character that no vocabulary token contains."""
    text = "".join(vocabulary)
    for code in _PRIVATE_USE:
        if chr(code) not in text:
            return chr(code)
    raise ValueError("vocabulary: uses every private-use character")  # pragma: no cover


def keras_hub_table(tokenizer, sentinel):
    """The code point table that reproduces a KerasHub WordPiece tokenizer's
    pre-tokenization (split, strip accents, case-fold), derived by running its
    own `pretokenize` on every code point.

    Args:
        tokenizer: a `keras_hub.tokenizers.WordPieceTokenizer` (e.g. the
            `BertTokenizer` of `kd_keras.data.WordPieceEncoder`).
        sentinel: the character that replaces whitespace kept inside a word
            (see `sentinel_for`).

    Returns:
        `{character: normalized string}` for the characters that change.
    """
    import tensorflow as tf

    from kd_keras._keras_compat import wordpiece_pretokenize

    def words(texts):
        """Per text: its number of words, its first and second word."""
        out = wordpiece_pretokenize(tokenizer, tf.constant(texts))
        counts = out.row_lengths().numpy()
        starts = out.row_starts().numpy()
        values = out.flat_values.numpy()
        padded = np.concatenate([values, [b"", b""]])
        return counts, padded[starts], padded[starts + 1]

    # KerasHub's regex ops stop reading a string at a NUL character; the
    # table treats it as the control character it is (a word break).
    chars = [chr(c) for c in range(1, 0x110000) if c not in _SURROGATES]
    around, _, middle = words([f"a{c}a" for c in chars])
    alone, single, _ = words(chars)
    spaces = whitespace_characters()

    def inner(s):
        return "".join(sentinel if ch in spaces else ch for ch in s)

    table = {"\0": " "}
    encoded = np.array([c.encode("utf-8") for c in chars], dtype=object)
    plain = (around == 1) & (alone == 1) & (single == encoded)
    for i in np.flatnonzero(~plain):
        char = chars[i]
        if around[i] == 2:  # a dropped delimiter
            normalized = " "
        elif around[i] == 3:  # a delimiter kept as its own word
            normalized = f" {inner(middle[i].decode('utf-8'))} "
        elif around[i] == 1:
            normalized = inner(single[i].decode("utf-8")) if alone[i] else ""
        else:  # pragma: no cover - the regexes split one character at most once
            raise ValueError(f"tokenizer: unexpected split of {char!r}")
        if normalized != char:
            table[char] = normalized
    for char in spaces:  # Whitespace KerasHub keeps inside a word.
        if char not in table and around[chars.index(char)] == 1:
            table[char] = inner(char)
    return table


@functools.lru_cache(maxsize=4)
def _cached_model(settings, sentinel):
    class Settings:  # What `keras_hub_table` reads from a tokenizer.
        lowercase, strip_accents, split, split_on_cjk = settings
        special_tokens_in_strings = False

    return normalizer_model(keras_hub_table(Settings, sentinel))


def keras_hub_normalizer_model(tokenizer, vocabulary):
    """The normalizer model for a KerasHub WordPiece tokenizer and its
    vocabulary (built once per process and settings:
    deriving the table takes seconds).

    Args:
        tokenizer: a `keras_hub.tokenizers.WordPieceTokenizer`.
        vocabulary: its tokens (to pick the whitespace sentinel).

    Returns:
        The `FastBertNormalizerModel` flatbuffer as `bytes`.
    """
    if tokenizer.special_tokens_in_strings:  # pragma: no cover - the pipeline never sets it
        raise ValueError("tokenizer: special_tokens_in_strings is not supported")
    settings = (bool(tokenizer.lowercase), bool(tokenizer.strip_accents),
                bool(tokenizer.split), bool(tokenizer.split_on_cjk))
    return _cached_model(settings, sentinel_for(vocabulary))
