"""Convolutions: conv1d/conv2d/conv_transpose1d/conv_transpose2d vs torch.nn.functional."""

import kiln
import numpy as np
import pytest
from compare import assert_close, both, randn, require_torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from kiln.autograd import gradcheck, gradgradcheck

FLOATS = [kiln.float32, kiln.float64]


def _F():
    return require_torch().nn.functional


def _operands(x_shape, w_shape, bias, dtype, seed=0):
    rng = np.random.default_rng(seed)
    ops = [both(randn(*x_shape, rng=rng), True, dtype), both(randn(*w_shape, rng=rng), True, dtype)]
    if bias:
        ops.append(both(randn(w_shape[0] if bias == "out" else bias, rng=rng), True, dtype))
    return ops


def _check(kfn, tfn, ops, rtol=None, atol=None):
    """Forward values and the gradients of every operand match torch."""
    torch = require_torch()
    ks, ts = [o[0] for o in ops], [o[1] for o in ops]
    kout, tout = kfn(*ks), tfn(*ts)
    assert_close(kout, tout, rtol=rtol, atol=atol)
    g = randn(*tout.shape, rng=np.random.default_rng(7))
    kout.backward(kiln.tensor(g).to(kout.dtype))
    tout.backward(torch.tensor(g).to(tout.dtype))
    for k, t in zip(ks, ts):
        assert_close(k.grad, t.grad, rtol=rtol, atol=atol)


# (input shape, weight shape, stride, padding, dilation, groups)
CONV2D_CASES = [
    ((2, 3, 8, 8), (4, 3, 3, 3), 1, 0, 1, 1),
    ((2, 3, 8, 8), (4, 3, 3, 3), 1, 1, 1, 1),
    ((1, 3, 9, 7), (5, 3, 3, 2), 2, 1, 1, 1),
    ((2, 4, 11, 10), (6, 2, 3, 3), (2, 3), (1, 2), (2, 1), 2),
    ((2, 4, 7, 7), (4, 1, 3, 3), 1, 1, 1, 4),           # depthwise
    ((2, 4, 7, 7), (8, 1, 3, 3), 2, 0, 1, 4),           # depthwise, multiplier 2
    ((3, 2, 5, 6), (3, 2, 1, 1), 1, 0, 1, 1),           # 1x1
    ((1, 1, 6, 6), (1, 1, 6, 6), 1, 0, 1, 1),           # kernel == input
    ((2, 3, 10, 9), (2, 3, 2, 4), 3, (0, 2), (3, 2), 1),
    ((2, 3, 8, 8), (4, 3, 3, 3), 1, "same", 1, 1),
    ((2, 3, 8, 7), (4, 3, 4, 2), 1, "same", 1, 1),       # even kernel: asymmetric padding
    ((2, 6, 9, 8), (6, 3, 3, 4), 1, "same", (2, 3), 2),
    ((2, 3, 8, 8), (4, 3, 3, 3), 2, "valid", 1, 1),
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", CONV2D_CASES)
def test_conv2d(case, bias, dtype):
    xs, ws, s, p, d, g = case
    _check(lambda x, w, b=None: kiln.conv2d(x, w, b, s, p, d, g),
           lambda x, w, b=None: _F().conv2d(x, w, b, s, p, d, g),
           _operands(xs, ws, "out" if bias else None, dtype),
           rtol=1e-4 if dtype == kiln.float32 else None)


CONV1D_CASES = [
    ((2, 3, 10), (4, 3, 3), 1, 0, 1, 1),
    ((1, 4, 13), (6, 2, 4), 3, 2, 2, 2),
    ((2, 4, 9), (4, 1, 3), 1, "same", 2, 4),
    ((2, 3, 9), (2, 3, 4), 1, "same", 1, 1),
    ((2, 3, 9), (2, 3, 4), 2, "valid", 1, 1),
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", CONV1D_CASES)
def test_conv1d(case, dtype):
    xs, ws, s, p, d, g = case
    _check(lambda x, w, b: kiln.conv1d(x, w, b, s, p, d, g),
           lambda x, w, b: _F().conv1d(x, w, b, s, p, d, g),
           _operands(xs, ws, "out", dtype), rtol=1e-4 if dtype == kiln.float32 else None)


# (input shape, weight shape, stride, padding, output_padding, groups, dilation)
CONVT2D_CASES = [
    ((2, 3, 5, 5), (3, 4, 3, 3), 1, 0, 0, 1, 1),
    ((2, 3, 5, 6), (3, 4, 3, 3), 2, 1, 1, 1, 1),
    ((1, 4, 4, 5), (4, 3, 2, 3), (2, 3), (1, 0), (1, 2), 2, 1),
    ((2, 4, 5, 4), (4, 1, 3, 3), 1, 1, 0, 4, 2),
    ((2, 2, 4, 4), (2, 3, 3, 2), 1, 0, 1, 1, 2),          # output_padding < dilation
    ((2, 2, 3, 5), (2, 2, 4, 4), 3, 2, 2, 1, (1, 2)),
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", CONVT2D_CASES)
def test_conv_transpose2d(case, bias, dtype):
    xs, ws, s, p, op, g, d = case
    _check(lambda x, w, b=None: kiln.conv_transpose2d(x, w, b, s, p, op, g, d),
           lambda x, w, b=None: _F().conv_transpose2d(x, w, b, s, p, op, g, d),
           _operands(xs, ws, ws[1] * g if bias else None, dtype),
           rtol=1e-4 if dtype == kiln.float32 else None)


@pytest.mark.parametrize("case", [((2, 3, 7), (3, 2, 3), 2, 1, 1, 1, 1),
                                  ((1, 4, 5), (4, 1, 2), 3, 0, 2, 2, 2)])
def test_conv_transpose1d(case):
    xs, ws, s, p, op, g, d = case
    _check(lambda x, w, b: kiln.conv_transpose1d(x, w, b, s, p, op, g, d),
           lambda x, w, b: _F().conv_transpose1d(x, w, b, s, p, op, g, d),
           _operands(xs, ws, ws[1] * g, kiln.float64))


def test_keyword_arguments_and_defaults():
    (xk, xt), (wk, wt) = _operands((2, 3, 6, 6), (4, 3, 3, 3), None, kiln.float64)
    assert_close(kiln.conv2d(xk, wk, padding=1, stride=2), _F().conv2d(xt, wt, padding=1, stride=2))
    assert_close(kiln.conv2d(input=xk, weight=wk), _F().conv2d(xt, wt))
    assert_close(kiln.conv_transpose2d(xk, wk.transpose(0, 1), stride=2, output_padding=1),
                 _F().conv_transpose2d(xt, wt.transpose(0, 1), stride=2, output_padding=1))


def test_unbatched_input():
    (xk, xt), (wk, wt), (bk, bt) = _operands((3, 7, 6), (4, 3, 3, 3), "out", kiln.float64)
    assert_close(kiln.conv2d(xk, wk, bk, padding=1), _F().conv2d(xt, wt, bt, padding=1))
    (xk, xt), (wk, wt) = _operands((3, 7), (4, 3, 2), None, kiln.float64)
    assert_close(kiln.conv1d(xk, wk), _F().conv1d(xt, wt))
    (wk, wt) = both(randn(3, 2, 2))
    assert_close(kiln.conv_transpose1d(xk, wk, stride=2), _F().conv_transpose1d(xt, wt, stride=2))


def test_noncontiguous_operands():
    rng = np.random.default_rng(3)
    x = randn(2, 9, 8, 6, rng=rng)   # used as (N, W, H, C) -> permuted to (N, C, H, W)
    w = randn(3, 3, 6, 5, rng=rng)   # (kw, kh, C, O) -> permuted to (O, C, kh, kw)
    xk, xt = both(x, True)
    wk, wt = both(w, True)
    k = kiln.conv2d(xk.permute(0, 3, 2, 1)[:, :, ::2], wk.permute(3, 2, 1, 0), stride=(1, 2),
                    padding=1)
    t = _F().conv2d(xt.permute(0, 3, 2, 1)[:, :, ::2], wt.permute(3, 2, 1, 0), stride=(1, 2),
                    padding=1)
    assert_close(k, t)
    k.sum().backward()
    t.sum().backward()
    assert_close(xk.grad, xt.grad)
    assert_close(wk.grad, wt.grad)
    # expanded (stride-0) input
    xe = randn(1, 2, 5, 5, rng=rng)
    (xek, xet), (wk2, wt2) = both(xe), both(randn(3, 2, 2, 2, rng=rng))
    assert_close(kiln.conv2d(xek.expand(3, 2, 5, 5), wk2),
                 _F().conv2d(xet.expand(3, 2, 5, 5), wt2))


@pytest.mark.parametrize("dtype", [kiln.float16, kiln.bfloat16])
def test_half_precision(dtype):
    torch = require_torch()
    (xk, xt), (wk, wt), (bk, bt) = _operands((2, 3, 6, 6), (4, 3, 3, 3), "out", kiln.float32)
    k = kiln.conv2d(xk.to(dtype), wk.to(dtype), bk.to(dtype), padding=1)
    assert k.dtype == dtype
    td = torch.float16 if dtype == kiln.float16 else torch.bfloat16
    t = _F().conv2d(xt.to(td).float(), wt.to(td).float(), bt.to(td).float(), padding=1)
    assert_close(k.float(), t, rtol=2e-2, atol=5e-2)
    xh, wh = xk.detach().to(dtype).requires_grad_(), wk.detach().to(dtype).requires_grad_()
    kiln.conv2d(xh, wh, stride=2).sum().backward()
    xf = xt.detach().to(td).float().requires_grad_()
    wf = wt.detach().to(td).float().requires_grad_()
    _F().conv2d(xf, wf, stride=2).sum().backward()
    assert xh.grad.dtype == dtype and wh.grad.dtype == dtype
    assert_close(xh.grad.float(), xf.grad, rtol=2e-2, atol=5e-2)
    assert_close(wh.grad.float(), wf.grad, rtol=2e-2, atol=1e-1)


def test_empty_batch():
    (xk, xt), (wk, wt) = _operands((0, 3, 6, 6), (4, 3, 3, 3), None, kiln.float64)
    assert_close(kiln.conv2d(xk, wk), _F().conv2d(xt, wt))


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("groups", [1, 2])
def test_gradcheck(transposed, groups):
    rng = np.random.default_rng(5)
    x = kiln.tensor(randn(2, 4, 5, 4, rng=rng)).requires_grad_()
    w = kiln.tensor(randn(4, 2 if transposed else 4 // groups, 2, 3, rng=rng)).requires_grad_()
    b = kiln.tensor(randn(2 * groups if transposed else 4, rng=rng)).requires_grad_()
    if transposed:
        def f(x, w, b):
            return kiln.conv_transpose2d(x, w, b, (2, 1), (1, 0), (1, 0), groups, (1, 2))
    else:
        def f(x, w, b):
            return kiln.conv2d(x, w, b, (2, 1), (1, 2), (1, 2), groups)
    assert gradcheck(f, (x, w, b))
    assert gradgradcheck(f, (x, w, b))


def test_gradcheck_same_padding_even_kernel():
    rng = np.random.default_rng(6)
    x = kiln.tensor(randn(1, 2, 5, 6, rng=rng)).requires_grad_()
    w = kiln.tensor(randn(3, 2, 2, 4, rng=rng)).requires_grad_()
    f = lambda x, w: kiln.conv2d(x, w, padding="same", dilation=(1, 1))
    assert gradcheck(f, (x, w))
    assert gradgradcheck(f, (x, w))
    x1 = kiln.tensor(randn(2, 2, 7, rng=rng)).requires_grad_()
    w1 = kiln.tensor(randn(2, 2, 3, rng=rng)).requires_grad_()
    assert gradcheck(lambda x, w: kiln.conv1d(x, w, None, 2, 1, 2), (x1, w1))


def test_double_backward_vs_torch():
    torch = require_torch()
    (xk, xt), (wk, wt) = _operands((2, 2, 6, 5), (3, 2, 3, 2), None, kiln.float64)
    kout = kiln.conv2d(xk, wk, stride=2, padding=1)
    tout = _F().conv2d(xt, wt, stride=2, padding=1)
    (kgx,) = kiln.autograd.grad((kout * kout).sum(), [xk], create_graph=True)
    (tgx,) = torch.autograd.grad((tout * tout).sum(), [xt], create_graph=True)
    assert_close(kgx, tgx)
    (kgx * kgx).sum().backward()
    (tgx * tgx).sum().backward()
    assert_close(wk.grad, wt.grad)
    assert_close(xk.grad, xt.grad)


def _err(fn, exc, *words):
    with pytest.raises(exc) as info:
        fn()
    for w in words:
        assert w in str(info.value), str(info.value)


def test_errors():
    x = kiln.zeros(2, 4, 8, 8)
    w = kiln.zeros(8, 3, 3, 3)
    _err(lambda: kiln.conv2d(x, w), ValueError, "[conv2d]", "expected input with 3 channels",
         "[8, 3, 3, 3]", "groups=1", "[2, 4, 8, 8]")
    _err(lambda: kiln.conv2d(kiln.zeros(2, 3, 8, 8), w, stride=0), ValueError, "[conv2d]",
         "stride")
    _err(lambda: kiln.conv2d(kiln.zeros(2, 3, 8, 8), w, padding=-1), ValueError, "padding")
    _err(lambda: kiln.conv2d(kiln.zeros(2, 3, 8, 8), w, dilation=(1, 0)), ValueError,
         "dilation")
    _err(lambda: kiln.conv2d(kiln.zeros(2, 3, 8, 8), w, stride=(1, 2, 3)), ValueError, "stride")
    _err(lambda: kiln.conv2d(kiln.zeros(2, 3, 2, 2), w), ValueError, "[conv2d]",
         "kernel size")
    _err(lambda: kiln.conv2d(kiln.zeros(2, 3, 8, 8), w, padding="full"), ValueError,
         "'same', 'valid'")
    _err(lambda: kiln.conv2d(kiln.zeros(2, 3, 8, 8), w, stride=2, padding="same"), ValueError,
         "strided")
    _err(lambda: kiln.conv2d(kiln.zeros(8, 8), w), ValueError, "[conv2d]", "3-D (unbatched)")
    _err(lambda: kiln.conv2d(kiln.zeros(2, 3, 8, 8), kiln.zeros(8, 3, 3)), ValueError,
         "4-D weight")
    _err(lambda: kiln.conv2d(kiln.zeros(2, 6, 8, 8), kiln.zeros(9, 3, 3, 3), groups=2),
         ValueError, "divisible by groups")
    _err(lambda: kiln.conv2d(kiln.zeros(2, 3, 8, 8), w, kiln.zeros(7)), ValueError, "bias")
    _err(lambda: kiln.conv2d(kiln.zeros(2, 3, 8, 8, dtype=kiln.float64), w), TypeError,
         "same dtype")
    _err(lambda: kiln.conv2d(kiln.zeros(2, 3, 8, 8, dtype=kiln.int64),
                             kiln.zeros(8, 3, 3, 3, dtype=kiln.int64)), TypeError, "floating")
    _err(lambda: kiln.conv2d(kiln.zeros(2, 3, 8, 8), w, groups=0), ValueError, "groups")
    _err(lambda: kiln.conv2d(kiln.zeros(2, 3, 8, 8), w, stride="2"), TypeError, "stride")
    _err(lambda: kiln.conv1d(kiln.zeros(2, 3, 2), kiln.zeros(4, 3, 3)), ValueError, "[conv1d]")
    wt = kiln.zeros(3, 4, 3, 3)
    _err(lambda: kiln.conv_transpose2d(kiln.zeros(2, 3, 4, 4), wt, output_padding=1),
         ValueError, "[conv_transpose2d]", "output_padding")
    _err(lambda: kiln.conv_transpose2d(kiln.zeros(2, 5, 4, 4), wt), ValueError,
         "expected input with 3 channels")
    _err(lambda: kiln.conv_transpose2d(kiln.zeros(2, 3, 1, 1), wt, padding=2), ValueError,
         "output size")


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_random_configurations(data):
    """Random conv2d/conv_transpose2d geometries match torch, values and gradients."""
    draw = data.draw
    groups = draw(st.sampled_from([1, 2, 3]))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    p = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    n = draw(st.integers(1, 2))
    transposed = draw(st.booleans())
    bias = draw(st.booleans())
    if transposed:
        h, w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
        op = tuple(draw(st.integers(0, max(a, b) - 1)) for a, b in zip(s, d))
        sizes = [(hw - 1) * si - 2 * pi + di * (ki - 1) + oi + 1
                 for hw, si, pi, di, ki, oi in zip((h, w), s, p, d, k, op)]
        assume(all(v > 0 for v in sizes))
        ws = (cin, cout // groups, *k)
    else:
        h = draw(st.integers(max(1, d[0] * (k[0] - 1) + 1 - 2 * p[0]), 8))
        w = draw(st.integers(max(1, d[1] * (k[1] - 1) + 1 - 2 * p[1]), 8))
        ws = (cout, cin // groups, *k)
    ops = _operands((n, cin, h, w), ws, cout if bias else None, kiln.float64,
                    seed=draw(st.integers(0, 100)))
    if transposed:
        _check(lambda x, w, b=None: kiln.conv_transpose2d(x, w, b, s, p, op, groups, d),
               lambda x, w, b=None: _F().conv_transpose2d(x, w, b, s, p, op, groups, d), ops)
    else:
        _check(lambda x, w, b=None: kiln.conv2d(x, w, b, s, p, d, groups),
               lambda x, w, b=None: _F().conv2d(x, w, b, s, p, d, groups), ops)


# (input shape, kernel_size, dilation, padding, stride)
UNFOLD_CASES = [
    ((2, 3, 6, 7), 3, 1, 0, 1),
    ((2, 3, 6, 7), (2, 3), (2, 1), (1, 2), (2, 3)),
    ((3, 5, 5), 2, 1, 1, 2),  # unbatched
]


@pytest.mark.parametrize("case", UNFOLD_CASES)
def test_unfold_fold(case):
    shape, k, d, p, s = case
    _check(lambda x: kiln.im2col(x, k, d, p, s), lambda x: _F().unfold(x, k, d, p, s),
           [both(randn(*shape), True)])
    cols = _F().unfold(require_torch().zeros(shape), k, d, p, s)
    _check(lambda c: kiln.col2im(c, shape[-2:], k, d, p, s),
           lambda c: _F().fold(c, shape[-2:], k, d, p, s),
           [both(randn(*cols.shape, rng=np.random.default_rng(2)), True)])
    x = kiln.tensor(randn(*shape)).requires_grad_()
    assert gradgradcheck(lambda x: kiln.im2col(x, k, d, p, s), (x,))
    c = kiln.tensor(randn(*cols.shape)).requires_grad_()
    assert gradgradcheck(lambda c: kiln.col2im(c, shape[-2:], k, d, p, s), (c,))


def test_unfold_fold_errors():
    _err(lambda: kiln.im2col(kiln.zeros(2, 3), 2), ValueError, "[unfold]", "[2, 3]")
    _err(lambda: kiln.im2col(kiln.zeros(1, 1, 2, 2), 3), ValueError, "[unfold]", "kernel")
    _err(lambda: kiln.col2im(kiln.zeros(1, 5, 4), (3, 3), 2), ValueError, "[fold]",
         "divisible")
    _err(lambda: kiln.col2im(kiln.zeros(1, 4, 5), (3, 3), 2), ValueError, "[fold]",
         "sliding blocks")


def test_large_batch_in_chunks():
    """Images whose im2col columns exceed the buffer budget are processed a few at a time."""
    rng = np.random.default_rng(8)
    ops = [both(randn(3, 64, 128, 128, dtype=np.float32, rng=rng), True),
           both(randn(2, 64, 3, 3, dtype=np.float32, rng=rng), True),
           both(randn(2, dtype=np.float32, rng=rng), True)]
    _check(lambda x, w, b: kiln.conv2d(x, w, b, padding=1),
           lambda x, w, b: _F().conv2d(x, w, b, padding=1), ops, rtol=1e-3, atol=2e-2)
    ops = [both(randn(3, 2, 128, 128, dtype=np.float32, rng=rng), True),
           both(randn(2, 64, 3, 3, dtype=np.float32, rng=rng), True)]
    _check(lambda x, w: kiln.conv_transpose2d(x, w, padding=1),
           lambda x, w: _F().conv_transpose2d(x, w, padding=1), ops, rtol=1e-3, atol=2e-2)


# The conv kernels work image by image, spread over kiln's threads (uneven splits
# included), with a flat-copy path for stride-1 convs whose output is as wide as the
# input (Note [Flat rows] in cpu/conv.cpp). (input, weight, stride, padding, dilation, groups)
PER_IMAGE_CASES = [
    ((5, 3, 9, 8), (4, 3, 3, 3), 1, 1, 1, 1),           # flat
    ((5, 3, 9, 8), (4, 3, 3, 3), 1, (0, 1), 1, 1),      # flat along x only
    ((5, 3, 9, 8), (4, 3, 3, 3), 1, (1, 0), 1, 1),      # narrower output: row by row
    ((5, 4, 9, 8), (6, 2, 3, 3), 1, "same", 2, 2),      # flat, dilated, grouped
    ((5, 3, 7, 6), (4, 3, 2, 4), 1, "same", 1, 1),      # flat, even kernel
    ((5, 3, 9, 8), (4, 3, 3, 3), (2, 1), 1, 1, 1),      # stride along y only
    ((1, 3, 4, 4), (2, 3, 5, 5), 1, 4, 2, 1),           # flat, taps wholly in the padding
    ((2, 3, 6, 4), (2, 3, 3, 3), 1, (1, 4), (1, 4), 1),  # flat, taps wholly off along x
]


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("case", PER_IMAGE_CASES)
def test_conv2d_per_image_paths(case, threads):
    xs, ws, s, p, d, g = case
    before = kiln.get_num_threads()
    kiln.set_num_threads(threads)
    try:
        _check(lambda x, w, b: kiln.conv2d(x, w, b, s, p, d, g),
               lambda x, w, b: _F().conv2d(x, w, b, s, p, d, g),
               _operands(xs, ws, "out", kiln.float64))
        _check(lambda x, w, b: kiln.conv2d(x, w, b, s, p, d, g),
               lambda x, w, b: _F().conv2d(x, w, b, s, p, d, g),
               _operands(xs, ws, "out", kiln.float32), rtol=1e-4)
        if s == 1 and p != "same":
            # the same geometry transposed (col2im's flat path); weight (in, out/groups, kh, kw)
            tws = (xs[1], ws[0] // g, ws[2], ws[3])
            _check(lambda x, w: kiln.conv_transpose2d(x, w, None, 1, p, 0, g, d),
                   lambda x, w: _F().conv_transpose2d(x, w, None, 1, p, 0, g, d),
                   _operands(xs, tws, None, kiln.float64))
    finally:
        kiln.set_num_threads(before)


@pytest.mark.parametrize("needs", ["weight", "bias", "weight+bias", "input"])
def test_conv2d_partial_gradients(needs):
    # A first layer (input without grad) skips the input gradient; the weight-gradient pass
    # also sums the bias gradient, which must still be right when only one of them is wanted.
    torch = require_torch()
    rng = np.random.default_rng(9)
    arrs = [randn(4, 3, 8, 8, rng=rng), randn(5, 3, 3, 3, rng=rng), randn(5, rng=rng)]
    names = ["input", "weight", "bias"]
    ks = [kiln.tensor(a).requires_grad_(n in needs) for a, n in zip(arrs, names)]
    ts = [torch.tensor(a).requires_grad_(n in needs) for a, n in zip(arrs, names)]
    g = randn(4, 5, 8, 8, rng=rng)
    kiln.conv2d(*ks, padding=1).backward(kiln.tensor(g))
    _F().conv2d(*ts, padding=1).backward(torch.tensor(g))
    for k, t, n in zip(ks, ts, names):
        assert (k.grad is None) == (n not in needs)
        if n in needs:
            assert_close(k.grad, t.grad)


def test_conv2d_threads_deterministic():
    # Per-thread partial weight gradients are summed in a fixed order.
    rng = np.random.default_rng(10)
    x = kiln.tensor(randn(7, 4, 9, 9, dtype=np.float32, rng=rng))
    w = kiln.tensor(randn(6, 4, 3, 3, dtype=np.float32, rng=rng), requires_grad=True)
    b = kiln.tensor(randn(6, dtype=np.float32, rng=rng), requires_grad=True)
    before = kiln.get_num_threads()
    kiln.set_num_threads(3)
    try:
        grads = []
        for _ in range(3):
            w.grad = b.grad = None
            kiln.conv2d(x, w, b, padding=1).square().sum().backward()
            grads.append((w.grad.numpy().copy(), b.grad.numpy().copy()))
    finally:
        kiln.set_num_threads(before)
    for gw, gb in grads[1:]:
        assert np.array_equal(gw, grads[0][0]) and np.array_equal(gb, grads[0][1])


def test_empty_batch_gradients():
    (xk, xt), (wk, wt), (bk, bt) = _operands((0, 3, 6, 6), (4, 3, 3, 3), "out", kiln.float64)
    kiln.conv2d(xk, wk, bk, padding=1).sum().backward()
    _F().conv2d(xt, wt, bt, padding=1).sum().backward()
    assert_close(wk.grad, wt.grad)
    assert_close(bk.grad, bt.grad)


def test_conv2d_from_several_python_threads():
    # Each call spreads images over kiln's threads; calls overlapping from Python
    # threads must not disturb each other.
    import threading

    rng = np.random.default_rng(11)
    xs = [kiln.tensor(randn(6, 4, 10, 10, dtype=np.float32, rng=rng)) for _ in range(4)]
    w = kiln.tensor(randn(8, 4, 3, 3, dtype=np.float32, rng=rng))
    expected = [kiln.conv2d(x, w, padding=1).numpy() for x in xs]
    results = [None] * len(xs)

    def run(i):
        for _ in range(5):
            results[i] = kiln.conv2d(xs[i], w, padding=1).numpy()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected):
        assert np.array_equal(got, want)


def test_weight_without_channels():
    # torch rejects these too (kiln used to crash on an empty output-channel dim)
    x = kiln.zeros(2, 3, 5, 5)
    _err(lambda: kiln.conv2d(x, kiln.zeros(0, 3, 3, 3)), ValueError, "[conv2d]", "[0, 3, 3, 3]")
    _err(lambda: kiln.conv_transpose2d(x, kiln.zeros(3, 0, 3, 3)), ValueError,
         "[conv_transpose2d]", "[3, 0, 3, 3]")
