"""Linear maps, convolutions, pooling, padding, resampling and attention."""

import math

import kiln
from kiln import _C
from kiln.amp._policy import op_policy

conv1d = kiln.conv1d
conv2d = kiln.conv2d
conv_transpose1d = kiln.conv_transpose1d
conv_transpose2d = kiln.conv_transpose2d
avg_pool1d = kiln.avg_pool1d
avg_pool2d = kiln.avg_pool2d
adaptive_avg_pool1d = kiln.adaptive_avg_pool1d
adaptive_avg_pool2d = kiln.adaptive_avg_pool2d


def linear(input, weight, bias=None):
    return kiln.linear(input, weight, bias)


@op_policy(cuda="promote")
def bilinear(input1, input2, weight, bias=None):
    """y[..., o] = x1[..., i] W[o, i, j] x2[..., j] + b[o]."""
    if input1.shape[:-1] != input2.shape[:-1]:
        raise ValueError(
            f"[bilinear] input1 {list(input1.shape)} and input2 {list(input2.shape)} must agree "
            "in all but the last dim"
        )
    out = kiln.einsum("...i,oij,...j->...o", input1, weight, input2)
    return out + bias if bias is not None else out


def max_pool1d(
    input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False
):
    if return_indices:
        return kiln.max_pool1d_with_indices(
            input, kernel_size, stride, padding, dilation, ceil_mode
        )
    return kiln.max_pool1d(input, kernel_size, stride, padding, dilation, ceil_mode)


def max_pool2d(
    input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False
):
    if return_indices:
        return kiln.max_pool2d_with_indices(
            input, kernel_size, stride, padding, dilation, ceil_mode
        )
    return kiln.max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode)


def adaptive_max_pool1d(input, output_size, return_indices=False):
    values, indices = kiln.adaptive_max_pool1d(input, output_size)
    return (values, indices) if return_indices else values


def adaptive_max_pool2d(input, output_size, return_indices=False):
    values, indices = kiln.adaptive_max_pool2d(input, output_size)
    return (values, indices) if return_indices else values


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    return kiln.im2col(input, kernel_size, dilation, padding, stride)


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    return kiln.col2im(input, output_size, kernel_size, dilation, padding, stride)


# ---- padding --------------------------------------------------------------------------------


def _pad_index(size, left, right, mode, device):
    """Source index for every position of a dim padded by (left, right) in `mode`."""
    idx = []
    for i in range(-left, size + right):
        if mode == "replicate":
            j = min(max(i, 0), size - 1)
        elif mode == "circular":
            j = i % size
        else:  # reflect: mirror about the edge elements (which are not repeated)
            period = 2 * (size - 1)
            j = i % period if period else 0
            j = period - j if j >= size else j
        idx.append(j)
    return kiln.tensor(idx, dtype=kiln.int64, device=device)


def pad(input, pad, mode="constant", value=None):
    if len(pad) % 2 or len(pad) // 2 > input.dim():
        raise ValueError(
            f"[pad] pad {list(pad)} must have an even length of at most 2 * {input.dim()} "
            f"for input of shape {list(input.shape)}"
        )
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise ValueError(f"[pad] unsupported mode {mode!r}")
    if mode in ("reflect", "replicate"):
        return _pad_float32_on_cpu(input, pad, mode, value)
    return _pad(input, pad, mode, value)


def _pad(input, pad, mode, value):
    out = input
    for k in range(len(pad) // 2):
        dim = input.dim() - 1 - k
        left, right = pad[2 * k], pad[2 * k + 1]
        size = out.shape[dim]
        if mode == "constant":
            # Negative pads crop.
            start, stop = max(-left, 0), size - max(-right, 0)
            out = out.narrow(dim, start, stop - start)
            pieces = []
            for n in (max(left, 0), max(right, 0)):
                shape = list(out.shape)
                shape[dim] = n
                fill = 0.0 if value is None else value
                pieces.append(kiln.full(shape, fill, dtype=out.dtype, device=out.device))
            out = kiln.cat([pieces[0], out, pieces[1]], dim)
        else:
            if mode == "reflect" and (left >= size or right >= size):
                raise ValueError(
                    f"[pad] reflect padding ({left}, {right}) must be less than the input size "
                    f"{size} of dim {dim}"
                )
            out = kiln.index_select(out, dim, _pad_index(size, left, right, mode, out.device))
    return out


# PyTorch's CPU autocast runs reflection and replication padding in float32.
_pad_float32_on_cpu = op_policy(cpu="fp32")(_pad)


# ---- resampling -----------------------------------------------------------------------------


def _source_coords(out_size, in_size, scale, align_corners):
    """Fractional source coordinate of every output position (linear modes)."""
    if align_corners:
        step = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
        return [i * step for i in range(out_size)]
    step = 1.0 / scale if scale else in_size / out_size
    return [max((i + 0.5) * step - 0.5, 0.0) for i in range(out_size)]


def _linear_along(x, dim, out_size, scale, align_corners):
    in_size = x.shape[dim]
    src = _source_coords(out_size, in_size, scale, align_corners)
    lo = [min(math.floor(s), in_size - 1) for s in src]
    hi = [min(i + 1, in_size - 1) for i in lo]
    shape = [1] * x.dim()
    shape[dim] = out_size
    w = kiln.tensor([s - i for s, i in zip(src, lo)], dtype=x.dtype, device=x.device)
    w = w.reshape(shape)
    a = kiln.index_select(x, dim, kiln.tensor(lo, dtype=kiln.int64, device=x.device))
    b = kiln.index_select(x, dim, kiln.tensor(hi, dtype=kiln.int64, device=x.device))
    return a + (b - a) * w


def _nearest_along(x, dim, out_size, scale, exact):
    in_size = x.shape[dim]
    step = 1.0 / scale if scale else in_size / out_size
    offset = 0.5 if exact else 0.0  # 'nearest-exact' samples pixel centres
    idx = [min(math.floor((i + offset) * step), in_size - 1) for i in range(out_size)]
    return kiln.index_select(x, dim, kiln.tensor(idx, dtype=kiln.int64, device=x.device))


def interpolate(
    input,
    size=None,
    scale_factor=None,
    mode="nearest",
    align_corners=None,
    recompute_scale_factor=None,
    antialias=False,
):
    nsp = input.dim() - 2
    if nsp < 1:
        raise ValueError(
            f"[interpolate] expected a (N, C, *spatial) input, got {list(input.shape)}"
        )
    if (size is None) == (scale_factor is None):
        raise ValueError("[interpolate] exactly one of size and scale_factor must be given")
    expected_dims = {
        "nearest": None,
        "nearest-exact": None,
        "area": None,
        "linear": 1,
        "bilinear": 2,
    }
    if mode not in expected_dims:
        raise ValueError(f"[interpolate] unsupported mode {mode!r}")
    if expected_dims[mode] not in (None, nsp):
        raise ValueError(
            f"[interpolate] mode {mode!r} expects {expected_dims[mode] + 2}-D input, "
            f"got {list(input.shape)}"
        )
    if mode in ("nearest", "nearest-exact", "area") and align_corners is not None:
        raise ValueError("[interpolate] align_corners is only valid for linear modes")
    if size is not None:
        sizes = [size] * nsp if isinstance(size, int) else list(size)
        scales = [None] * nsp
    else:
        scales = (
            [scale_factor] * nsp
            if not isinstance(scale_factor, (tuple, list))
            else list(scale_factor)
        )
        sizes = [math.floor(input.shape[2 + i] * scales[i]) for i in range(nsp)]
        if recompute_scale_factor:
            scales = [None] * nsp
    if mode == "area":
        if nsp > 2:
            raise ValueError(f"[interpolate] 'area' supports 3-D and 4-D input, got {nsp + 2}-D")
        pool = adaptive_avg_pool1d if nsp == 1 else adaptive_avg_pool2d
        return pool(input, sizes)
    return _upsample(input, sizes, scales, mode, align_corners)


@op_policy(cuda="fp32")
def _upsample(input, sizes, scales, mode, align_corners):
    out = input
    for i in range(len(sizes)):
        dim = 2 + i
        if mode in ("nearest", "nearest-exact"):
            out = _nearest_along(out, dim, sizes[i], scales[i], mode == "nearest-exact")
        else:
            out = _linear_along(out, dim, sizes[i], scales[i], bool(align_corners))
    return out


def pixel_shuffle(input, upscale_factor):
    r = upscale_factor
    *batch, c, h, w = input.shape
    if c % (r * r):
        raise ValueError(
            f"[pixel_shuffle] channels {c} must be divisible by upscale_factor**2 = {r * r}"
        )
    x = input.reshape(-1, c // (r * r), r, r, h, w).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(*batch, c // (r * r), h * r, w * r)


# ---- similarity and attention ---------------------------------------------------------------


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    norm = kiln.norm(input, p, dim, keepdim=True)
    return input / kiln.clamp_min(norm, eps)


@op_policy(cuda="fp32")
def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    w12 = (x1 * x2).sum(dim)
    w11 = (x1 * x1).sum(dim)
    w22 = (x2 * x2).sum(dim)
    return w12 / kiln.sqrt(kiln.clamp_min(w11 * w22, eps * eps))


def one_hot(tensor, num_classes=-1):
    return kiln.one_hot(tensor, num_classes)


def _repeat_heads(x, heads):
    """Grouped-query attention: each of x's heads serves heads // x.shape[-3] query heads."""
    if heads % x.shape[-3]:
        raise ValueError(
            f"[scaled_dot_product_attention] {heads} query heads are not a multiple of "
            f"{x.shape[-3]} key/value heads"
        )
    group = heads // x.shape[-3]
    shape = list(x.shape)
    expanded = x.unsqueeze(-3).expand(*shape[:-2], group, *shape[-2:])
    return expanded.reshape(*shape[:-3], heads, *shape[-2:])


@op_policy(cpu="lower", cuda="lower")
def scaled_dot_product_attention(
    query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False
):
    if enable_gqa:
        key, value = _repeat_heads(key, query.shape[-3]), _repeat_heads(value, query.shape[-3])
    if dropout_p == 0.0:  # fused where the device has a kernel
        return _C._scaled_dot_product_attention(query, key, value, attn_mask, is_causal, scale)
    L, S = query.shape[-2], key.shape[-2]
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = kiln.matmul(query, key.transpose(-2, -1)) * scale
    if is_causal:
        if attn_mask is not None:
            raise ValueError("[scaled_dot_product_attention] give attn_mask or is_causal, not both")
        attn_mask = kiln.tril(kiln.ones(L, S, dtype=kiln.bool, device=query.device))
    if attn_mask is not None:
        if attn_mask.dtype == kiln.bool:
            scores = kiln.masked_fill(scores, kiln.logical_not(attn_mask), float("-inf"))
        else:
            scores = scores + attn_mask
    attn = kiln.softmax(scores, -1)
    keep = kiln.bernoulli(
        kiln.full(attn.shape, 1.0 - dropout_p, dtype=attn.dtype, device=attn.device)
    )
    return kiln.matmul(attn * keep / (1.0 - dropout_p), value)
