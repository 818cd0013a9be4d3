"""cuda/attention_layout.h, how cuDNN's fused attention sees kiln tensors, compiled for the
CPU: the 4-D (b, h, rows, cols) description of a (batch..., rows, cols) view addresses the
same elements as the view, views it can't describe are refused, and the tensors cuDNN
writes are laid out like q (so MultiheadAttention merges its heads back without a copy),
and grad_out is given the output's layout."""

from pathlib import Path

import kiln
import numpy as np
import pytest
from kiln.utils import cpp_extension

SOURCE = r"""
#include "attention_layout.h"

// dims_of(t, head_split(t)) as an int64 tensor (b, h, rows, cols, their four strides), or
// an empty one where it refuses t.
kiln::Tensor layout_dims(const kiln::Tensor& t) {
  const std::optional<kiln::cuda::Dims4> d = kiln::cuda::dims_of(t, kiln::cuda::head_split(t));
  kiln::Tensor out = kiln::empty({d ? 8 : 0}, kiln::ScalarType::Int64);
  for (int i = 0; d && i < 4; ++i) {
    out.data<int64_t>()[i] = d->size[i];
    out.data<int64_t>()[4 + i] = d->stride[i];
  }
  return out;
}

// in_layout_of(t, like).
kiln::Tensor layout_as(const kiln::Tensor& t, const kiln::Tensor& like) {
  return kiln::cuda::in_layout_of(t, like);
}

// empty_in_order_of(like, sizes), sizes an int64 tensor.
kiln::Tensor layout_empty_like(const kiln::Tensor& like, const kiln::Tensor& sizes) {
  const int64_t* s = sizes.data<int64_t>();
  return kiln::cuda::empty_in_order_of(like, kiln::Shape(s, s + sizes.numel()));
}
"""


@pytest.fixture(scope="module")
def ext(tmp_path_factory):
    return cpp_extension.load_inline(
        "attention_layout_check", SOURCE, functions=["layout_dims", "layout_empty_like", "layout_as"],
        extra_include_paths=[str(Path(__file__).resolve().parents[1] / "cuda")],
        build_directory=str(tmp_path_factory.mktemp("attention_layout")))


def numbered(n):
    """A contiguous float16 tensor holding 0..n-1 (exact in float16 below 2048)."""
    assert n <= 2048
    return kiln.tensor(np.arange(n, dtype=np.float16))


def described(ext, base, t):
    """The elements cuDNN would read for t: its 4-D description applied to t's storage."""
    d = ext.layout_dims(t).numpy()
    assert d.size == 8, f"dims_of refused a view it should take: {t.shape} {t.stride()}"
    size, stride = d[:4], d[4:]
    storage = base.numpy()
    itemsize = storage.itemsize
    return np.lib.stride_tricks.as_strided(storage[t.storage_offset():], shape=tuple(size),
                                           strides=tuple(int(s) * itemsize for s in stride))


def heads(x, n_heads):
    """(N, L, E) -> (N, heads, L, E / heads), as MultiheadAttention splits its projections."""
    n, length, e = x.shape
    return x.view(n, length, n_heads, e // n_heads).transpose(1, 2)


def test_multi_head_views_are_read_in_place(ext):
    N, L, H, D = 2, 4, 2, 8
    base = numbered(N * L * 3 * H * D)
    qkv = base.view(N, L, 3 * H * D)
    q, k, v = (heads(p, H) for p in qkv.split(H * D, -1))
    for t in (q, k, v):
        np.testing.assert_array_equal(described(ext, base, t), t.numpy())
        assert tuple(ext.layout_dims(t).numpy()[:4]) == (N, H, L, D)


@pytest.mark.parametrize("shape,make", [
    ((16, 8), lambda t: t),                                  # no batch dims
    ((3, 16, 8), lambda t: t),                               # one
    ((2, 3, 5, 16), lambda t: t.transpose(1, 2)),            # two, not mergeable
    ((2, 3, 4, 2, 8), lambda t: t),                          # three that merge into two
    ((2, 1, 3, 4, 8), lambda t: t.transpose(0, 2)),          # a size-1 dim between
    ((4, 1, 8), lambda t: t),                                # one row
    ((2, 6, 16), lambda t: t[:, 1:5]),                       # rows of a slice
])
def test_views_it_takes_read_the_same_elements(ext, shape, make):
    base = numbered(int(np.prod(shape)))
    t = make(base.view(*shape))
    np.testing.assert_array_equal(described(ext, base, t).reshape(t.shape), t.numpy())


def test_every_tensor_of_a_problem_splits_its_batch_alike(ext):
    """b and h come from the batch shape, not from each tensor's strides: a head view and a
    contiguous tensor of one problem agree (cuDNN would read mismatched ones as grouped
    heads)."""
    N, L, H, D = 2, 4, 2, 8
    base = numbered(N * L * 3 * H * D)
    view = heads(base.view(N, L, 3 * H * D)[..., : H * D], H)
    packed = numbered(N * H * L * D).view(N, H, L, D)
    assert tuple(ext.layout_dims(view).numpy()[:2]) == (N, H)
    assert tuple(ext.layout_dims(packed).numpy()[:2]) == (N, H)
    flat = numbered(N * H * L * D).view(N * H, L, D)  # one batch dim: all of it is b
    assert tuple(ext.layout_dims(flat).numpy()[:2]) == (N * H, 1)
    deep = numbered(3 * N * H * L * D).view(3, N, H, L, D)  # heads last, the rest merge
    assert tuple(ext.layout_dims(deep).numpy()[:2]) == (3 * N, H)


@pytest.mark.parametrize("make,why", [
    (lambda b: b.view(4, 8, 8).expand(2, 4, 8, 8), "a broadcast (stride 0) batch dim"),
    (lambda b: b.view(2, 2, 2, 4, 8).permute(1, 0, 2, 3, 4), "b's dims that don't merge"),
    (lambda b: b.view(4, 8, 8).transpose(1, 2), "columns not contiguous"),
    (lambda b: b[:252].view(21, 12)[:, :8], "rows not 16-byte aligned"),
    (lambda b: b[1:249].view(31, 8), "a base not 16-byte aligned"),
])
def test_views_it_refuses(ext, make, why):
    t = make(numbered(256))
    assert ext.layout_dims(t).numel() == 0, why


def test_outputs_are_laid_out_like_q(ext):
    N, L, H, D, Ev = 2, 4, 2, 8, 16
    q = heads(numbered(N * L * 3 * H * D).view(N, L, 3 * H * D)[..., : H * D], H)
    out = ext.layout_empty_like(q, kiln.tensor(np.array([N, H, L, Ev])))
    assert tuple(out.shape) == (N, H, L, Ev)
    assert out.stride() == (L * H * Ev, Ev, H * Ev, 1)  # memory (N, L, H, Ev)
    assert out.transpose(1, 2).is_contiguous()  # merging the heads back is a view
    assert tuple(ext.layout_dims(out).numpy()) == (N, H, L, Ev, L * H * Ev, Ev, H * Ev, 1)
    packed = kiln.zeros(N, H, L, D, dtype=kiln.float16)
    assert ext.layout_empty_like(packed, kiln.tensor(np.array([N, H, L, Ev]))).is_contiguous()


def test_grad_out_is_laid_out_like_the_output(ext):
    N, L, H, Ev = 2, 4, 2, 16
    out = ext.layout_empty_like(heads(numbered(N * L * H * 8).view(N, L, H * 8), H),
                                kiln.tensor(np.array([N, H, L, Ev])))
    grad = numbered(N * H * L * Ev).view(N, H, L, Ev)  # contiguous: another layout
    matched = ext.layout_as(grad, out)
    assert matched.stride() == out.stride()
    np.testing.assert_array_equal(matched.numpy(), grad.numpy())
    same = heads(numbered(N * L * H * Ev).view(N, L, H * Ev), H)
    assert ext.layout_as(same, out).data_ptr() == same.data_ptr()  # already matching: no copy
