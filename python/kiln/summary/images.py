"""Image summaries: arrays in CHW/HWC/HW/NCHW/NHWC layouts encoded as PNG."""

import numpy as np

from kiln.summary import _proto
from kiln.summary.png import encode_png


def to_hwc_uint8(array, dataformats, op):
    """(H, W, C) uint8 pixels of one image, or of a batch (N in the layout)
    tiled into a grid of up to 8 columns."""
    return grid(to_nhwc_uint8(array, dataformats, op))


def to_nhwc_uint8(array, dataformats, op):
    """(N, H, W, C) uint8 pixels. Non-uint8 values are taken to be in [0, 1]
    (scaled by 255, rounded, clipped), as torch's SummaryWriter does."""
    layout = dataformats.upper()
    if sorted(layout) not in (sorted("HW"), sorted("CHW"), sorted("NCHW")) or len(
        set(layout)
    ) != len(layout):
        raise ValueError(
            f"[{op}] dataformats must be a permutation of HW, CHW or NCHW, got '{dataformats}'"
        )
    if array.ndim != len(layout):
        raise ValueError(
            f"[{op}] dataformats '{dataformats}' needs a {len(layout)}-D array, got shape {array.shape}"
        )
    full = layout
    if "C" not in full:
        array, full = array[..., None], full + "C"
    if "N" not in full:
        array, full = array[None], "N" + full
    array = np.transpose(array, [full.index(axis) for axis in "NHWC"])
    if array.shape[3] not in (1, 2, 3, 4):
        raise ValueError(
            f"[{op}] images need 1 to 4 channels, got {array.shape[3]} (shape {array.shape})"
        )
    return _to_uint8(array, op)


def _to_uint8(array, op):
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind not in "biuf":
        raise TypeError(f"[{op}] images must be numeric, got dtype {array.dtype}")
    scaled = np.rint(array.astype(np.float64) * 255.0)
    return np.clip(np.nan_to_num(scaled), 0, 255).astype(np.uint8)


def grid(batch, max_columns=8):
    n, h, w, c = batch.shape
    if n == 1:
        return batch[0]
    columns = min(n, max_columns)
    rows = -(-n // columns)
    canvas = np.zeros((rows * h, columns * w, c), dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, columns)
        canvas[r * h : (r + 1) * h, col * w : (col + 1) * w] = batch[i]
    return canvas


def image_value(tag, hwc):
    """Summary.Value holding the PNG of an (H, W, C) uint8 image."""
    h, w, c = hwc.shape
    image = _proto.Summary.Image(
        height=h, width=w, colorspace=c, encoded_image_string=encode_png(hwc)
    )
    return _proto.Summary.Value(tag=tag, image=image)
