"""The tolerances an exported artifact must meet against the Keras model.

Full-precision artifacts must match the Keras logits (`max_abs_diff`);
quantized ones must keep its decisions (`min_top1_agreement`) and its
accuracy (`max_accuracy_drop`). `TOLERANCES` holds them per quantization;
a format held to others has them in `FORMAT_TOLERANCES`. An export records
each artifact's tolerance in `report.json` beside its measures.
"""

# Logit tolerances per quantization. Full-precision artifacts must match the
# Keras logits; quantized ones must keep the decisions.
TOLERANCES = {
    "none": {"max_abs_diff": 1e-4},
    "float16": {"max_abs_diff": 1e-2},
    "dynamic": {"min_top1_agreement": 0.98, "max_accuracy_drop": 0.01},
    "int8": {"min_top1_agreement": 0.98, "max_accuracy_drop": 0.01},
}
# Formats held to other tolerances. MediaPipe's classifier tokenizes raw
# text itself, slightly unlike the pipeline on rare input (docs/mediapipe.md),
# so it is held to the Keras model's decisions and accuracy; its
# `max_abs_diff` is between probabilities.
FORMAT_TOLERANCES = {
    "mediapipe": {
        q: {"min_top1_agreement": 0.995, "max_accuracy_drop": 0.003}
        for q in ("none", "int8")
    },
}


def tolerance(format, quantization):
    """The tolerance an artifact of `format` and `quantization` must meet.

    Example:

    >>> tolerance("tflite", "none")
    {'max_abs_diff': 0.0001}
    """
    return FORMAT_TOLERANCES.get(format, TOLERANCES)[quantization]


def check_tolerance(entry, reference_accuracy):
    """Returns a list of reasons `entry` misses its tolerance (empty = pass);
    the tolerance is its `tolerance`, else its quantization's."""
    tol = entry.get("tolerance") or TOLERANCES[entry["quantization"]]
    reasons = []
    if "max_abs_diff" in tol and not entry["max_abs_diff"] <= tol["max_abs_diff"]:
        reasons.append(
            f"max_abs_diff {entry['max_abs_diff']:.3g} > {tol['max_abs_diff']:g}"
        )
    if "min_top1_agreement" in tol:
        if not entry["top1_agreement"] >= tol["min_top1_agreement"]:
            reasons.append(
                f"top1_agreement {entry['top1_agreement']:.4f} < "
                f"{tol['min_top1_agreement']}"
            )
        if reference_accuracy is not None and entry["accuracy"] is not None:
            drop = reference_accuracy - entry["accuracy"]
            if drop > tol["max_accuracy_drop"] + 1e-9:
                reasons.append(
                    f"accuracy drop {drop:.4f} > {tol['max_accuracy_drop']}"
                )
    return reasons
