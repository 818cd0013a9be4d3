"""Pooling: max/avg/adaptive pools (1-D and 2-D) vs torch.nn.functional."""

import kiln
import numpy as np
import pytest
from compare import assert_close, both, randn, require_torch
from kiln.autograd import gradcheck, gradgradcheck

FLOATS = [kiln.float32, kiln.float64]


def _F():
    return require_torch().nn.functional


def _check(kfn, tfn, shape, dtype=kiln.float64, seed=0, view=None):
    """Values (and indices) and the input gradient match torch."""
    torch = require_torch()
    xk, xt = both(randn(*shape, rng=np.random.default_rng(seed)), True, dtype)
    vk, vt = (view(xk), view(xt)) if view else (xk, xt)
    kout, tout = kfn(vk), tfn(vt)
    if isinstance(tout, tuple):
        assert_close(kout[1], tout[1])
        kout, tout = kout[0], tout[0]
    assert_close(kout, tout)
    g = randn(*tout.shape, rng=np.random.default_rng(seed + 1))
    kout.backward(kiln.tensor(g).to(kout.dtype))
    tout.backward(torch.tensor(g).to(tout.dtype))
    assert_close(xk.grad, xt.grad)


# (input shape, kernel_size, stride, padding, dilation, ceil_mode)
MAX2D = [
    ((2, 3, 8, 8), 2, None, 0, 1, False),
    ((2, 3, 9, 7), 3, 2, 1, 1, False),
    ((2, 3, 9, 7), 3, 2, 1, 1, True),
    ((1, 2, 10, 11), (2, 3), (1, 2), (1, 0), (2, 3), False),
    ((1, 2, 10, 11), (3, 2), (2, 3), (1, 1), (2, 1), True),
    ((3, 8, 8), 3, 3, 1, 1, True),                    # unbatched
    ((2, 1, 5, 5), 5, 1, 2, 1, False),
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", MAX2D)
def test_max_pool2d(case, dtype):
    shape, k, s, p, d, c = case
    _check(lambda x: kiln.max_pool2d_with_indices(x, k, s, p, d, c),
           lambda x: _F().max_pool2d(x, k, s, p, d, c, return_indices=True), shape, dtype)
    _check(lambda x: kiln.max_pool2d(x, k, s, p, d, c),
           lambda x: _F().max_pool2d(x, k, s, p, d, c), shape, dtype)


@pytest.mark.parametrize("case", [((2, 3, 11), 3, 2, 1, 1, True),
                                  ((2, 3, 10), 2, None, 0, 2, False),
                                  ((4, 9), 4, 1, 2, 1, False)])
def test_max_pool1d(case):
    shape, k, s, p, d, c = case
    _check(lambda x: kiln.max_pool1d_with_indices(x, k, s, p, d, c),
           lambda x: _F().max_pool1d(x, k, s, p, d, c, return_indices=True), shape)
    _check(lambda x: kiln.max_pool1d(x, k, s, p, d, c),
           lambda x: _F().max_pool1d(x, k, s, p, d, c), shape)


# (input shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
AVG2D = [
    ((2, 3, 8, 8), 2, None, 0, False, True, None),
    ((2, 3, 9, 7), 3, 2, 1, False, True, None),
    ((2, 3, 9, 7), 3, 2, 1, True, False, None),
    ((2, 3, 9, 7), 3, 2, 1, True, True, None),
    ((1, 2, 10, 11), (2, 4), (3, 2), (1, 2), True, False, None),
    ((1, 2, 10, 11), (3, 3), 2, 1, False, True, 4),
    ((3, 7, 6), 2, 1, 1, True, False, None),          # unbatched
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", AVG2D)
def test_avg_pool2d(case, dtype):
    shape, k, s, p, c, cip, div = case
    _check(lambda x: kiln.avg_pool2d(x, k, s, p, c, cip, div),
           lambda x: _F().avg_pool2d(x, k, s, p, c, cip, div), shape, dtype)


@pytest.mark.parametrize("case", [((2, 3, 11), 3, 2, 1, True, False),
                                  ((2, 3, 10), 4, 3, 2, False, True),
                                  ((3, 9), 2, None, 1, True, True)])
def test_avg_pool1d(case):
    shape, k, s, p, c, cip = case
    _check(lambda x: kiln.avg_pool1d(x, k, s, p, c, cip),
           lambda x: _F().avg_pool1d(x, k, s, p, c, cip), shape)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,size", [((2, 3, 9, 7), (4, 3)), ((2, 3, 8, 8), 1),
                                        ((1, 2, 5, 6), (7, None)), ((3, 6, 6), 3),
                                        ((2, 2, 10, 7), (3, 7))])
def test_adaptive_2d(shape, size, dtype):
    _check(lambda x: kiln.adaptive_avg_pool2d(x, size),
           lambda x: _F().adaptive_avg_pool2d(x, size), shape, dtype)
    _check(lambda x: kiln.adaptive_max_pool2d(x, size),
           lambda x: _F().adaptive_max_pool2d(x, size, return_indices=True), shape, dtype)


@pytest.mark.parametrize("shape,size", [((2, 3, 11), 4), ((2, 3, 5), 8), ((3, 7), 1)])
def test_adaptive_1d(shape, size):
    _check(lambda x: kiln.adaptive_avg_pool1d(x, size),
           lambda x: _F().adaptive_avg_pool1d(x, size), shape)
    _check(lambda x: kiln.adaptive_max_pool1d(x, size),
           lambda x: _F().adaptive_max_pool1d(x, size, return_indices=True), shape)


def test_noncontiguous_input():
    view = lambda x: x.permute(0, 3, 1, 2)[:, :, ::2]
    _check(lambda x: kiln.max_pool2d(x, 3, 2, 1), lambda x: _F().max_pool2d(x, 3, 2, 1),
           (2, 10, 7, 3), view=view)
    _check(lambda x: kiln.avg_pool2d(x, 2, 1, 1, count_include_pad=False),
           lambda x: _F().avg_pool2d(x, 2, 1, 1, count_include_pad=False), (2, 10, 7, 3),
           view=view)
    _check(lambda x: kiln.adaptive_avg_pool2d(x, 3), lambda x: _F().adaptive_avg_pool2d(x, 3),
           (2, 10, 7, 3), view=view)


def test_nan_and_ties():
    torch = require_torch()
    x = np.array([[[[1.0, np.nan, 3.0], [3.0, 3.0, -np.inf], [-np.inf, -np.inf, -np.inf]]]])
    xk, xt = both(x)
    assert_close(kiln.max_pool2d_with_indices(xk, 2, 1),
                 _F().max_pool2d(xt, 2, 1, return_indices=True))
    xk, xt = both(np.full((1, 1, 4, 4), -np.inf))
    assert_close(kiln.max_pool2d_with_indices(xk, 2), _F().max_pool2d(xt, 2, return_indices=True))
    del torch


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (2, 3, 11, 13), (1, 2, 4, 22), (3, 2, 2)])
def test_max_pool2d_2x2_float32(shape):
    # MaxPool2d(2) on float32 takes a vectorized path (four outputs at a time, then a tail);
    # ties, NaNs and -inf must pick torch's value and index.
    rng = np.random.default_rng(5)
    x = rng.integers(-2, 3, shape).astype(np.float32)
    x[rng.random(shape) < 0.05] = np.nan
    x[rng.random(shape) < 0.05] = -np.inf
    xk, xt = both(x, True, kiln.float32)
    kout, tout = kiln.max_pool2d_with_indices(xk, 2), _F().max_pool2d(xt, 2, return_indices=True)
    assert_close(kout, tout)
    g = randn(*tout[0].shape, rng=rng)
    kout[0].backward(kiln.tensor(g).float())
    tout[0].backward(require_torch().tensor(g).float())
    assert_close(xk.grad, xt.grad)
    _check(lambda x: kiln.max_pool2d(x, 2), lambda x: _F().max_pool2d(x, 2), (2, 8, 9, 3),
           kiln.float32, view=lambda x: x.permute(0, 3, 1, 2))


@pytest.mark.parametrize("dtype", [kiln.float16, kiln.bfloat16])
def test_half_precision(dtype):
    x = kiln.tensor(randn(2, 3, 6, 6)).to(dtype)
    ref = x.float()
    assert kiln.max_pool2d(x, 2).dtype == dtype
    assert_close(kiln.max_pool2d(x, 2).float(), kiln.max_pool2d(ref, 2))
    assert_close(kiln.avg_pool2d(x, 3, 1, 1).float(), kiln.avg_pool2d(ref, 3, 1, 1), rtol=2e-2,
                 atol=2e-2)


FNS = [
    lambda x: kiln.max_pool2d(x, (2, 3), (1, 2), 1, (1, 2), True),
    lambda x: kiln.avg_pool2d(x, 3, 2, 1, True, False),
    lambda x: kiln.avg_pool2d(x, (2, 3), 1, (1, 1), False, True, 5),
    lambda x: kiln.adaptive_avg_pool2d(x, (3, 2)),
    lambda x: kiln.adaptive_max_pool2d(x, (2, 3))[0],
    lambda x: kiln.max_pool1d(x.flatten(2), 3, 2, 1),
    lambda x: kiln.avg_pool1d(x.flatten(2), 4, 3, 2, True, False),
]


@pytest.mark.parametrize("fn", FNS)
def test_gradcheck(fn):
    # distinct values keep the max away from ties, where finite differences are meaningless
    rng = np.random.default_rng(4)
    x = kiln.tensor(rng.permutation(2 * 2 * 5 * 6).reshape(2, 2, 5, 6) / 7.0).requires_grad_()
    assert gradcheck(fn, (x,))
    assert gradgradcheck(fn, (x,))


def test_double_backward_vs_torch():
    torch = require_torch()
    for kf, tf in [(lambda x: kiln.max_pool2d(x, 2, 1), lambda x: _F().max_pool2d(x, 2, 1)),
                   (lambda x: kiln.avg_pool2d(x, 3, 2, 1), lambda x: _F().avg_pool2d(x, 3, 2, 1))]:
        xk, xt = both(randn(1, 2, 5, 5), True)
        yk = kf(xk)
        (gk,) = kiln.autograd.grad((yk * yk).sum(), [xk], create_graph=True)
        yt = tf(xt)
        (gt,) = torch.autograd.grad((yt * yt).sum(), [xt], create_graph=True)
        assert_close(gk, gt)
        (gk * xk).sum().backward()
        (gt * xt).sum().backward()
        assert_close(xk.grad, xt.grad)


def _err(fn, exc, *words):
    with pytest.raises(exc) as info:
        fn()
    for w in words:
        assert w in str(info.value), str(info.value)


def test_errors():
    x = kiln.zeros(2, 3, 8, 8)
    _err(lambda: kiln.max_pool2d(x, 0), ValueError, "[max_pool2d]", "kernel_size")
    _err(lambda: kiln.max_pool2d(x, 2, 0), ValueError, "stride")
    _err(lambda: kiln.max_pool2d(x, 2, 2, 2), ValueError, "pad should be at most half")
    _err(lambda: kiln.max_pool2d(x, 2, dilation=0), ValueError, "dilation")
    _err(lambda: kiln.max_pool2d(x, 9), ValueError, "[max_pool2d]", "kernel size",
         "[2, 3, 8, 8]")
    _err(lambda: kiln.max_pool2d(kiln.zeros(8, 8), 2), ValueError, "3-D (unbatched)")
    _err(lambda: kiln.max_pool2d(kiln.zeros(2, 3, 0, 8), 2), ValueError, "non-empty")
    _err(lambda: kiln.max_pool2d(x, (2, 2, 2)), ValueError, "kernel_size")
    _err(lambda: kiln.max_pool2d(kiln.zeros(2, 3, 8, 8, dtype=kiln.int64), 2), TypeError,
         "floating")
    _err(lambda: kiln.avg_pool2d(x, 2, divisor_override=0), ValueError, "divisor_override")
    _err(lambda: kiln.avg_pool2d(x, 3, 1, 2), ValueError, "[avg_pool2d]", "pad")
    _err(lambda: kiln.avg_pool1d(kiln.zeros(2, 3, 4), 5), ValueError, "[avg_pool1d]")
    _err(lambda: kiln.adaptive_avg_pool2d(x, (0, 2)), ValueError, "[adaptive_avg_pool2d]",
         "output_size")
    _err(lambda: kiln.adaptive_max_pool2d(x, (1, 2, 3)), ValueError, "output_size")
    _err(lambda: kiln.max_pool2d(x, "2"), TypeError, "kernel_size")
