"""Histogram summaries (`HistogramProto`), shown as distributions and histograms."""

import numpy as np

from kiln.summary import _proto


def _tensorflow_edges():
    """TensorFlow's default bucket edges: +-1e-12 growing by 10% up to 1e20, and 0."""
    positive = 1e-12 * 1.1 ** np.arange(int(np.ceil(np.log(1e32) / np.log(1.1))))
    positive = positive[positive < 1e20]
    return np.concatenate([-positive[::-1], [0.0], positive])


_TF_EDGES = _tensorflow_edges()


def histogram_value(tag, values, bins="tensorflow", max_bins=None):
    """Buckets ``values`` (any shape; NaN and infinities are left out)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError(f"[add_histogram] '{tag}': no finite values to make a histogram of")
    edges = _TF_EDGES if isinstance(bins, str) and bins == "tensorflow" else bins
    counts, edges = np.histogram(values, bins=edges)
    if max_bins is not None and len(counts) > max_bins:
        counts, edges = _merge_bins(counts, edges, int(max_bins))
    nonzero = np.flatnonzero(counts)
    if nonzero.size == 0:  # every value fell outside explicit edges
        limits, buckets = edges[1:], counts
    else:
        # Only the non-empty range: readers take the first bucket's left edge to
        # be `min` (an empty bucket in front would come out reversed).
        first, last = nonzero[0], nonzero[-1]
        limits, buckets = edges[first + 1 : last + 2], counts[first : last + 1]
    return histogram_raw_value(
        tag,
        values.min(),
        values.max(),
        values.size,
        values.sum(),
        values.dot(values),
        limits,
        buckets,
    )


def _merge_bins(counts, edges, max_bins):
    group = -(-len(counts) // max_bins)
    padded = np.concatenate([counts, np.zeros(-len(counts) % group, dtype=counts.dtype)])
    merged = padded.reshape(-1, group).sum(axis=1)
    merged_edges = np.append(edges[:-1:group], edges[-1])
    return merged, merged_edges


def histogram_raw_value(tag, min, max, num, sum, sum_squares, bucket_limits, bucket_counts):
    limits = np.asarray(bucket_limits, dtype=np.float64).reshape(-1)
    counts = np.asarray(bucket_counts, dtype=np.float64).reshape(-1)
    if len(limits) != len(counts):
        raise ValueError(
            f"[add_histogram_raw] '{tag}': {len(limits)} bucket limits but {len(counts)} counts"
        )
    histo = _proto.HistogramProto(
        min=float(min),
        max=float(max),
        num=float(num),
        sum=float(sum),
        sum_squares=float(sum_squares),
        bucket_limit=limits.tolist(),
        bucket=counts.tolist(),
    )
    return _proto.Summary.Value(tag=tag, histo=histo)
