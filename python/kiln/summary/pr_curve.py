"""Precision-recall curves for TensorBoard's PR CURVES tab.

The plugin reads a float tensor of shape [6, num_thresholds]: true/false
positive, true/false negative counts, precision and recall at thresholds
``i / (num_thresholds - 1)``.
"""

import numpy as np

from kiln.summary import _proto

_EPS = 1e-7


def pr_curve_counts(labels, predictions, num_thresholds=127, weights=None):
    """(tp, fp, tn, fn) at each threshold; a prediction >= threshold counts as positive."""
    labels = np.asarray(labels).reshape(-1).astype(bool)
    predictions = np.asarray(predictions, dtype=np.float64).reshape(-1)
    if labels.shape != predictions.shape:
        raise ValueError(
            f"[add_pr_curve] labels has {labels.size} elements, predictions {predictions.size}"
        )
    if predictions.size and (predictions.min() < 0 or predictions.max() > 1):
        raise ValueError("[add_pr_curve] predictions must lie in [0, 1]")
    num_thresholds = int(num_thresholds)
    if num_thresholds < 2:
        raise ValueError(f"[add_pr_curve] num_thresholds must be >= 2, got {num_thresholds}")
    weights = (
        np.ones_like(predictions)
        if weights is None
        else (np.broadcast_to(np.asarray(weights, dtype=np.float64), predictions.shape))
    )
    buckets = np.floor(predictions * (num_thresholds - 1)).astype(np.int64)
    tp_per_bucket = np.bincount(buckets, weights=weights * labels, minlength=num_thresholds)
    fp_per_bucket = np.bincount(buckets, weights=weights * ~labels, minlength=num_thresholds)
    tp = np.cumsum(tp_per_bucket[::-1])[::-1]
    fp = np.cumsum(fp_per_bucket[::-1])[::-1]
    return tp, fp, fp[0] - fp, tp[0] - tp


def pr_curve_value(tag, tp, fp, tn, fn, precision=None, recall=None):
    tp, fp, tn, fn = (np.asarray(x, dtype=np.float64).reshape(-1) for x in (tp, fp, tn, fn))
    if not len(tp) == len(fp) == len(tn) == len(fn):
        raise ValueError("[add_pr_curve_raw] the four count arrays must have the same length")
    if precision is None:
        precision = tp / np.maximum(_EPS, tp + fp)
    if recall is None:
        recall = tp / np.maximum(_EPS, tp + fn)
    data = np.stack(
        [
            tp,
            fp,
            tn,
            fn,
            np.asarray(precision, dtype=np.float64).reshape(-1),
            np.asarray(recall, dtype=np.float64).reshape(-1),
        ]
    ).astype(np.float32)
    from tensorboard.plugins.pr_curve import plugin_data_pb2

    content = plugin_data_pb2.PrCurvePluginData(version=0, num_thresholds=len(tp))
    return _proto.Summary.Value(
        tag=tag,
        tensor=_proto.tensor_proto(data),
        metadata=_proto.plugin_metadata("pr_curves", content.SerializeToString()),
    )
