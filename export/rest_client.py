#!/usr/bin/env python
"""Call a model served by TF Serving over its REST API.

    python export/rest_client.py --model student --examples examples.npz
    python export/rest_client.py --model student --text "a gorgeous film" "dull"

`examples.npz` holds one array per signature input, named as the input (batch
on axis 0), e.g. `np.savez("examples.npz", features=x_val[:4])`. `--text`
sends raw sentences to the `serving_text` signature of a text model exported
with its tokenizer (`{"text": [...]}`). The script
POSTs `{"signature_name": ..., "inputs": {...}}` to
`URL/v1/models/MODEL[/versions/V]:predict` and prints the outputs as JSON.

Building the request (`build_rest_request`) and reading the response
(`parse_rest_response`) are pure functions; only `send_rest_request` touches
the network. Needs NumPy and the standard library only.
"""

import argparse
import base64
import http.client
import json
import sys
import urllib.error
import urllib.request

import numpy as np

TEXT_SIGNATURE = "serving_text"
TEXT_INPUT = "text"


def _to_json_value(array):
    """Convert an array to nested lists; bytes become UTF-8 text or b64."""
    if array.dtype.kind in ("S", "O"):
        def convert(item):
            if isinstance(item, bytes):
                try:
                    return item.decode("utf-8")
                except UnicodeDecodeError:
                    return {"b64": base64.b64encode(item).decode("ascii")}
            return item

        return np.vectorize(convert, otypes=[object])(array).tolist()
    return array.tolist()


def _as_arrays(examples):
    if not isinstance(examples, dict) or not examples:
        raise ValueError(
            "examples: must be a non-empty dict of input name -> array, "
            f"got {type(examples).__name__}"
        )
    arrays = {name: np.asarray(value) for name, value in examples.items()}
    for name, array in arrays.items():
        if array.ndim == 0:
            raise ValueError(f"examples[{name!r}]: needs a batch axis, got a scalar")
        if array.shape[0] == 0:
            raise ValueError(f"examples[{name!r}]: holds no examples")
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            # JSON has no NaN or infinity (json.dumps would write `NaN`).
            raise ValueError(f"examples[{name!r}]: holds NaN or infinity, which JSON "
                             "cannot carry")
    sizes = {name: array.shape[0] for name, array in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"examples: inputs differ in batch size: {sizes}")
    return arrays


def build_rest_request(signature, examples, row_format=False):
    """Build the JSON body of a TF Serving REST predict request.

    Args:
        signature: The signature name, e.g. `"serving_default"`.
        examples: Dict input name -> array (batch on axis 0).
        row_format: If `True`, use the row format
            (`"instances": [{name: value}, ...]`, one entry per example);
            otherwise the columnar format (`"inputs": {name: batch}`).

    Returns:
        A JSON-serialisable dict.

    Example:

    >>> build_rest_request("serving_default", {"x": np.array([[1.0, 2.0]])})
    {'signature_name': 'serving_default', 'inputs': {'x': [[1.0, 2.0]]}}
    """
    arrays = _as_arrays(examples)
    if not row_format:
        return {
            "signature_name": signature,
            "inputs": {name: _to_json_value(a) for name, a in arrays.items()},
        }
    columns = {name: _to_json_value(a) for name, a in arrays.items()}
    size = next(iter(arrays.values())).shape[0]
    instances = [
        {name: column[i] for name, column in columns.items()}
        for i in range(size)
    ]
    return {"signature_name": signature, "instances": instances}


def text_examples(sentences):
    """The `serving_text` input for raw sentences: `{"text": array}`.

    Example:

    >>> build_rest_request("serving_text", text_examples(["a fine film"]))
    {'signature_name': 'serving_text', 'inputs': {'text': ['a fine film']}}
    """
    return {TEXT_INPUT: np.array([str(s) for s in sentences], dtype=object)}


def parse_rest_response(body):
    """Turn a REST predict response into arrays.

    Args:
        body: The decoded JSON response: `{"outputs": ...}` (columnar) or
            `{"predictions": ...}` (row format).

    Returns:
        A dict output name -> `np.ndarray`; a signature with a single
        output gives `{"outputs": array}`.
    """
    if not isinstance(body, dict):
        raise ValueError(f"response: expected a JSON object, got {type(body).__name__}")
    if "error" in body:
        raise RuntimeError(f"server: {body['error']}")
    if "outputs" in body:
        outputs = body["outputs"]
        if isinstance(outputs, dict):
            return {name: np.asarray(value) for name, value in outputs.items()}
        return {"outputs": np.asarray(outputs)}
    if "predictions" in body:
        rows = body["predictions"]
        if not isinstance(rows, list):
            raise ValueError(f"response: 'predictions' must be a list, got "
                             f"{type(rows).__name__}")
        if rows and isinstance(rows[0], dict):
            if not all(isinstance(row, dict) and row.keys() == rows[0].keys() for row in rows):
                raise ValueError("response: the 'predictions' rows name different outputs")
            return {name: np.asarray([row[name] for row in rows]) for name in rows[0]}
        return {"outputs": np.asarray(rows)}
    raise ValueError(
        f"response: has neither 'outputs' nor 'predictions' (keys {sorted(body)})"
    )


def predict_url(base_url, model_name, version=None):
    """Return `BASE/v1/models/NAME[/versions/V]:predict`."""
    url = f"{base_url.rstrip('/')}/v1/models/{model_name}"
    if version is not None:
        url += f"/versions/{int(version)}"
    return url + ":predict"


def send_rest_request(url, body, timeout=10.0):
    """POST a request body and return the decoded JSON response.

    Args:
        url: The predict URL (see `predict_url`).
        body: A dict from `build_rest_request`.
        timeout: Seconds to wait for the server.

    Returns:
        The decoded JSON response (a dict).
    """
    data = json.dumps(body).encode("utf-8")
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        detail = e.read().decode("utf-8", "replace").strip()
        try:
            parsed = json.loads(detail)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and "error" in parsed:
            detail = parsed["error"]
        raise RuntimeError(f"{url}: HTTP {e.code}: {detail[:500]}") from None
    except urllib.error.URLError as e:
        raise ConnectionError(f"{url}: cannot reach the server: {e.reason}") from None
    except http.client.HTTPException as e:  # Not HTTP (a gRPC port), or cut off.
        raise ConnectionError(f"{url}: not a TF Serving REST answer "
                              f"({type(e).__name__}: {e})") from None
    except TimeoutError as e:  # Connected, then no (whole) answer in time.
        raise ConnectionError(f"{url}: no answer within {timeout} s ({e})") from None
    except OSError as e:
        raise ConnectionError(f"{url}: the connection failed ({e})") from None
    try:
        return json.loads(text)
    except ValueError:  # A proxy's HTML page, say.
        raise ValueError(f"{url}: the answer is not JSON: {text[:200]!r}") from None


def _npz_examples(path):
    """`{input name: array}` from an `.npz` (`np.savez`); an `.npy` holds
    one unnamed array, so it is refused."""
    data = np.load(path, allow_pickle=False)
    if not hasattr(data, "files"):
        raise ValueError("one unnamed array; save an .npz of input name -> array "
                         "(np.savez(path, token_ids=...))")
    with data:
        return {name: data[name] for name in data.files}


def load_examples(path, limit=None):
    """Load examples from an `.npz` (one array per input) or `.json` file.

    A `.json` file holds `{input name: nested list}`.
    """
    try:
        if path.endswith(".json"):
            with open(path) as f:
                raw = json.load(f)
            if not isinstance(raw, dict):
                raise ValueError("expected an object of input name -> list")
            examples = {name: np.asarray(value) for name, value in raw.items()}
        else:
            examples = _npz_examples(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: examples file not found") from None
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read examples ({e})") from None
    for name, value in examples.items():
        if value.ndim == 0:
            raise ValueError(f"{path}: input {name!r} is one value, not a batch of examples")
    if limit is not None:
        examples = {name: value[:limit] for name, value in examples.items()}
    return examples


def positive_int(text):
    """`--limit`: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        description="Call a TF Serving model over REST and print its outputs.",
    )
    parser.add_argument("--url", default="http://localhost:8501",
                        help="TF Serving REST address (default: %(default)s)")
    parser.add_argument("--model", required=True,
                        help="model name, as MODEL_NAME / models.config says")
    parser.add_argument("--version", type=int, default=None,
                        help="model version (default: the latest served)")
    parser.add_argument("--signature", default=None,
                        help="signature name (default: serving_text with --text, "
                             "else serving_default)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--examples",
                        help=".npz (one array per input name) or .json file")
    source.add_argument("--text", nargs="+", metavar="SENTENCE",
                        help="raw sentences, for a model exported with its tokenizer")
    parser.add_argument("--limit", type=positive_int, default=None,
                        help="send only the first N examples")
    parser.add_argument("--row-format", action="store_true",
                        help='send "instances" (rows) instead of "inputs"')
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait (default: %(default)s)")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.text:
            examples = text_examples(args.text[: args.limit])
            signature = args.signature or TEXT_SIGNATURE
        else:
            examples = load_examples(args.examples, args.limit)
            signature = args.signature or "serving_default"
        body = build_rest_request(signature, examples, args.row_format)
        url = predict_url(args.url, args.model, args.version)
        outputs = parse_rest_response(send_rest_request(url, body, args.timeout))
    except (ValueError, FileNotFoundError, RuntimeError, ConnectionError) as e:
        print(f"rest_client: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({name: value.tolist() for name, value in outputs.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
