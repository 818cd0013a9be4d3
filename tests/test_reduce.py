"""Reductions, softmax and scans: differential tests against PyTorch, gradients, edge cases."""

import math

import kiln
import numpy as np
import pytest
from compare import assert_close, both, randn, require_torch

torch = require_torch()

FLOATS = [kiln.float32, kiln.float64]
DIMS = [None, 0, -1, (0, 2), (), (-1, 0), [1]]
LAYOUTS = ["contiguous", "transposed", "sliced", "expanded"]


def layout(arr, kind, dtype=kiln.float64):
    """The same values as kiln and torch tensors in the given memory layout (shape (3, 4, 5))."""
    if kind == "contiguous":
        return both(arr, dtype=dtype)
    if kind == "transposed":
        k, t = both(np.ascontiguousarray(arr.transpose(2, 1, 0)), dtype=dtype)
        return k.transpose(0, 2), t.transpose(0, 2)
    if kind == "sliced":
        big = np.zeros((arr.shape[0], arr.shape[1] * 2, arr.shape[2]), dtype=arr.dtype)
        big[:, ::2] = arr
        k, t = both(big, dtype=dtype)
        return k._slice(1, 0, None, 2), t[:, ::2]
    k, t = both(arr[:, :1], dtype=dtype)
    return k.expand(arr.shape[0], arr.shape[1], arr.shape[2]), t.expand(*arr.shape)


def tdims(dim, ndim):
    """dim as torch ops that need explicit dims take it (None/() mean all)."""
    if dim is None or dim == ():
        return tuple(range(ndim))
    return dim


def reduce_ref(name, t, dim, keepdim):
    """torch's result for a kiln reduction called as x.name(dim=dim, keepdim=keepdim)."""
    if name in ("logsumexp", "amax", "amin"):
        return getattr(t, name)(dim=tdims(dim, t.ndim), keepdim=keepdim)
    if name == "norm":
        return torch.linalg.vector_norm(t, dim=tdims(dim, t.ndim), keepdim=keepdim)
    if dim is None:
        return getattr(t, name)(dim=tdims(dim, t.ndim), keepdim=keepdim) if keepdim else \
            getattr(t, name)()
    return getattr(t, name)(dim=dim, keepdim=keepdim)


def call(k, name, dim, keepdim):
    if dim is None:
        return getattr(k, name)(keepdim=keepdim) if keepdim else getattr(k, name)()
    return getattr(k, name)(dim=dim, keepdim=keepdim)


# ---- forward values -------------------------------------------------------------------

MULTI = ["sum", "mean", "nansum", "nanmean", "var", "std", "amax", "amin", "logsumexp", "norm"]


@pytest.mark.parametrize("name", MULTI)
@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dtype", FLOATS)
def test_multi_dim_reductions_match_torch(name, dim, keepdim, dtype):
    x = randn(3, 4, 5)
    for kind in LAYOUTS:
        k, t = layout(x, kind, dtype)
        assert_close(call(k, name, dim, keepdim), reduce_ref(name, t, dim, keepdim))


@pytest.mark.parametrize("dim", [None, 0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dtype", FLOATS)
def test_prod_matches_torch(dim, keepdim, dtype):
    x = randn(3, 4, 5) * 0.5 + 1
    for kind in LAYOUTS:
        k, t = layout(x, kind, dtype)
        want = t.prod() if dim is None else t.prod(dim, keepdim=keepdim)
        got = k.prod() if dim is None else k.prod(dim, keepdim=keepdim)
        assert_close(got, want)
    assert_close(kiln.prod(kiln.tensor(x), (0, 2)), torch.tensor(x).prod(2).prod(0))


@pytest.mark.parametrize("name", ["max", "min"])
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_with_dim_return_values_and_indices(name, dim, keepdim):
    x = randn(3, 4, 5)
    for kind in LAYOUTS[:3]:
        k, t = layout(x, kind)
        got = getattr(k, name)(dim, keepdim)
        want = getattr(t, name)(dim, keepdim)
        assert_close(got.values, want.values)
        assert_close(got.indices, want.indices)
        values, indices = got
        assert_close(values, want[0])
        assert_close(indices, want[1])
        assert type(got).__name__ == name and got._fields == ("values", "indices")
        assert repr(got).startswith(f"kiln.return_types.{name}(\nvalues=tensor(")
        assert_close(getattr(kiln, name)(k, dim=dim, keepdim=keepdim).values, want.values)
    assert_close(getattr(kiln, name)(k), getattr(torch, name)(t))


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@pytest.mark.parametrize("dim", [None, 0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_argmax_argmin_match_torch(name, dim, keepdim):
    x = randn(3, 4, 5)
    for kind in LAYOUTS[:3]:
        k, t = layout(x, kind)
        assert_close(getattr(k, name)(dim, keepdim), getattr(t, name)(dim, keepdim))
        assert_close(getattr(kiln, name)(k, dim=dim, keepdim=keepdim),
                     getattr(torch, name)(t, dim=dim, keepdim=keepdim))


def test_ties_pick_the_first_index():
    x = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0]])
    k, t = both(x)
    assert_close(k.argmax(1), t.argmax(1))
    assert_close(k.argmin(1), t.argmin(1))
    assert_close(k.max(1).indices, t.max(1).indices)
    assert k.argmax().item() == 1
    big = np.full(1000, 5.0)
    big[[300, 700]] = 9.0
    assert kiln.tensor(big).argmax().item() == 300
    assert kiln.tensor(np.full((40, 50), -np.inf)).argmax(1).tolist() == [0] * 40


@pytest.mark.parametrize("dtype", ["int64", "int32", "uint8", "bool"])
def test_integer_and_bool_dtypes(dtype):
    x = np.random.default_rng(1).integers(0, 3, size=(3, 4))
    k, t = both(x, dtype=getattr(kiln, dtype))
    for fn in [lambda a: a.sum(), lambda a: a.sum(0), lambda a: a.prod(1), lambda a: a.amax(0),
               lambda a: a.amin((0, 1)), lambda a: a.any(1), lambda a: a.all(0),
               lambda a: a.cumsum(1), lambda a: a.cumprod(0),
               lambda a: a.max(), lambda a: a.count_nonzero(0)]:
        assert_close(fn(k), fn(t))
    assert_close(k.sum(dtype=kiln.float64), t.sum(dtype=torch.float64))
    assert_close(k.max(1).values, t.max(1).values)
    if dtype != "bool":  # torch has no argmax for bool; kiln does
        assert_close(k.max(1).indices, t.max(1).indices)
        assert_close(k.argmin(0), t.argmin(0))


def test_sum_dtype_argument_and_mean_dtype():
    k, t = both(np.arange(6).reshape(2, 3))
    assert_close(k.sum(1, dtype=kiln.float32), t.sum(1, dtype=torch.float32))
    assert_close(k.mean(dtype=kiln.float64), t.mean(dtype=torch.float64))
    assert_close(kiln.prod(k, 1, dtype=kiln.float64), torch.prod(t, 1, dtype=torch.float64))


def test_mean_var_softmax_reject_integers():
    k = kiln.tensor([1, 2, 3])
    with pytest.raises(RuntimeError, match=r"\[mean\].*floating point"):
        k.mean()
    with pytest.raises(RuntimeError, match=r"\[var\]"):
        k.var()
    with pytest.raises(RuntimeError, match=r"\[softmax\]"):
        k.softmax(0)
    with pytest.raises(RuntimeError, match=r"\[norm\]"):
        k.norm()
    assert_close(k.softmax(0, dtype=kiln.float64), torch.tensor([1, 2, 3]).softmax(0, torch.float64))
    assert_close(k.logsumexp(0), torch.tensor([1, 2, 3]).logsumexp(0))


@pytest.mark.parametrize("name", ["all", "any"])
def test_all_any_dims(name):
    x = np.random.default_rng(2).integers(0, 2, size=(3, 4, 5)).astype(bool)
    k, t = both(x)
    for dim in [None, 0, -1]:
        for keepdim in [False, True]:
            assert_close(call(k, name, dim, keepdim), reduce_ref(name, t, dim, keepdim))
    got = getattr(k, name)((0, 2))
    want = getattr(t, name)(2)
    want = getattr(want, name)(0)
    assert_close(got, want)
    assert_close(getattr(k, name)((0, 2), keepdim=True).shape, (1, 4, 1))
    kf, tf = both(randn(3, 4))
    assert_close(getattr(kf, name)(1), getattr(tf, name)(1))


def test_count_nonzero_and_aminmax():
    x = np.array([[0.0, 1.0, 2.0], [0.0, 0.0, -3.0]])
    k, t = both(x)
    assert_close(k.count_nonzero(), torch.count_nonzero(t))
    assert_close(kiln.count_nonzero(k, (0, 1)), torch.count_nonzero(t, (0, 1)))
    assert_close(k.count_nonzero(1), t.count_nonzero(1))
    got, want = k.aminmax(dim=1), t.aminmax(dim=1)
    assert_close(got.min, want.min)
    assert_close(got.max, want.max)
    lo, hi = kiln.aminmax(k)
    assert_close(lo, t.aminmax().min)
    assert_close(hi, t.aminmax().max)


# ---- var / std ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["var", "std"])
def test_var_std_correction_and_unbiased(name):
    x = randn(4, 6)
    k, t = both(x)
    f = getattr
    assert_close(f(k, name)(1, correction=0), f(t, name)(1, correction=0))
    assert_close(f(k, name)(1, correction=3, keepdim=True), f(t, name)(1, correction=3, keepdim=True))
    assert_close(f(k, name)(0, unbiased=False), f(t, name)(0, unbiased=False))
    assert_close(f(k, name)(False), f(t, name)(False))
    assert_close(f(k, name)((0, 1), True), f(t, name)((0, 1), True))
    assert_close(f(kiln, name)(k, dim=None, correction=2), f(torch, name)(t, dim=None, correction=2))
    with pytest.raises(TypeError, match=name):
        f(k, name)(0, unbiased=True, correction=1)


@pytest.mark.parametrize("name", ["var_mean", "std_mean"])
def test_var_mean_std_mean(name):
    k, t = both(randn(4, 6), requires_grad=True)
    got = getattr(kiln, name)(k, 1, correction=0)
    want = getattr(torch, name)(t, 1, correction=0)
    assert_close(got, want)
    (got[0] * 2 + got[1]).sum().backward()
    (want[0] * 2 + want[1]).sum().backward()
    assert_close(k.grad, t.grad)


def test_var_of_one_element_is_nan_and_precision():
    assert math.isnan(kiln.tensor([1.0]).var().item())
    assert kiln.tensor([1.0]).var(correction=0).item() == 0
    # Welford stays accurate with a large offset where the naive formula would cancel.
    x = np.random.default_rng(3).standard_normal(10000).astype(np.float32) + 1e4
    assert_close(kiln.tensor(x).var(), torch.tensor(x.astype(np.float64)).var().float(), rtol=1e-4)


# ---- softmax family -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dim", [0, 1, 2, -1])
@pytest.mark.parametrize("dtype", FLOATS)
def test_softmax_matches_torch(name, dim, dtype):
    x = randn(3, 4, 5) * 3
    for kind in LAYOUTS:
        k, t = layout(x, kind, dtype)
        assert_close(getattr(k, name)(dim), getattr(t, name)(dim))
        assert_close(getattr(kiln, name)(k, dim=dim), getattr(torch, name)(t, dim=dim))


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_dtype_large_values_and_masks(name):
    x = np.array([[1000.0, 1001.0, -1000.0], [-np.inf, 0.0, 1.0], [5.0, 5.0, 5.0]])
    k, t = both(x, dtype=kiln.float32)
    assert_close(getattr(k, name)(1), getattr(t, name)(1))
    assert_close(getattr(k, name)(1, dtype=kiln.float64), getattr(t, name)(1, dtype=torch.float64))
    assert_close(getattr(k, name)(0), getattr(t, name)(0))
    k0, t0 = both(np.float64(2.0))
    assert_close(getattr(k0, name)(0), getattr(t0, name)(0))
    ke, te = both(np.zeros((0, 3)))
    assert_close(getattr(ke, name)(0), getattr(te, name)(0))


def test_logsumexp_stability_and_infinities():
    x = np.array([[1e4, 1e4 + 1, 0.0], [-np.inf, -np.inf, -np.inf], [np.inf, 1.0, -np.inf],
                  [np.nan, 1.0, 2.0]])
    for dtype in FLOATS:
        k, t = both(x, dtype=dtype)
        assert_close(k.logsumexp(1), t.logsumexp(1))
        assert_close(kiln.logsumexp(k, dim=(0, 1)), torch.logsumexp(t, dim=(0, 1)))
    big = randn(2000) * 50
    assert_close(kiln.tensor(big).logsumexp(0), torch.tensor(big).logsumexp(0))


# ---- scans ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
@pytest.mark.parametrize("dim", [0, 1, 2, -1])
@pytest.mark.parametrize("dtype", FLOATS)
def test_scans_match_torch(name, dim, dtype):
    x = randn(3, 4, 5) * 0.5 + 1
    for kind in LAYOUTS:
        k, t = layout(x, kind, dtype)
        assert_close(getattr(k, name)(dim), getattr(t, name)(dim))
    assert_close(getattr(kiln, name)(k, dim, dtype=kiln.float64),
                 getattr(torch, name)(t, dim, dtype=torch.float64))


def test_scans_of_scalars_and_empties():
    k, t = both(np.float64(3.0))
    assert_close(k.cumsum(0), t.cumsum(0))
    assert_close(k.cumprod(-1), t.cumprod(-1))
    ke, te = both(np.zeros((2, 0)))
    assert_close(ke.cumsum(1), te.cumsum(1))
    assert_close(kiln.tensor([True, True, False]).cumsum(0), torch.tensor([True, True, False]).cumsum(0))


# ---- norm -----------------------------------------------------------------------------


@pytest.mark.parametrize("p", ["fro", 2, 1, 3, 0.5, 0, math.inf, -math.inf])
@pytest.mark.parametrize("dim", [None, 1, (0, 2)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_norm_matches_torch(p, dim, keepdim):
    x = randn(3, 4, 5)
    x[0, 0, 0] = 0.0
    for kind in LAYOUTS[:3]:
        k, t = layout(x, kind)
        want = torch.linalg.vector_norm(t, ord=2 if p == "fro" else p, dim=dim, keepdim=keepdim)
        assert_close(k.norm(p, dim, keepdim), want)
        assert_close(kiln.norm(k, p=p, dim=dim, keepdim=keepdim), want)


def test_norm_dtype_and_errors():
    k, t = both(randn(3, 4), dtype=kiln.float32)
    assert_close(k.norm(dtype=kiln.float64), t.norm(dtype=torch.float64))
    with pytest.raises(ValueError, match=r"\[norm\].*nuc"):
        k.norm("nuc")
    with pytest.raises(IndexError, match=r"\[norm\]"):
        kiln.zeros(0, 3).norm(math.inf)


# ---- edge cases -----------------------------------------------------------------------


def test_empty_reductions():
    k, t = both(np.zeros((0, 3)))
    for name in ["sum", "prod", "mean", "nansum", "var", "logsumexp", "norm", "any", "all"]:
        for dim in [0, 1]:
            assert_close(getattr(k, name)(dim), getattr(t, name)(dim))
    assert k.sum().item() == 0 and k.prod().item() == 1 and math.isnan(k.mean().item())
    assert_close(k.amax(1), t.amax(1))
    assert_close(k.argmax(1), t.argmax(1))
    assert_close(k.max(1).values, t.max(1).values)
    with pytest.raises(IndexError, match=r"\[amax\] expected reduction dim 0 to have non-zero size"):
        k.amax(0)
    with pytest.raises(IndexError, match=r"\[max\].*non-zero size"):
        k.max(0)
    with pytest.raises(IndexError, match=r"\[max\]"):
        k.max()
    with pytest.raises(IndexError, match=r"\[argmin\]"):
        k.argmin()
    with pytest.raises(IndexError, match=r"\[amin\]"):
        k.amin()


def test_zero_dim_inputs():
    k, t = both(np.float64(-2.5))
    for name in ["sum", "mean", "prod", "amax", "amin", "logsumexp", "norm", "argmax", "argmin",
                 "any", "all", "nansum"]:
        assert_close(getattr(k, name)(0), getattr(t, name)(0))
        assert_close(getattr(k, name)(-1, keepdim=True), getattr(t, name)(-1, keepdim=True))
    assert_close(k.sum(), t.sum())
    assert_close(k.max(0).values, t.max(0).values)
    assert_close(k.max(0).indices, t.max(0).indices)
    assert_close(k.std(0, correction=0), t.std(0, correction=0))
    with pytest.raises(IndexError, match=r"\[sum\].*\[-1, 0\].*got 1"):
        k.sum(1)


def test_size_one_dims():
    x = randn(1, 4, 1)
    k, t = both(x)
    for name in ["sum", "mean", "amax", "logsumexp", "std"]:
        for dim in [0, 2, (0, 2), 1]:
            assert_close(getattr(k, name)(dim, keepdim=True), getattr(t, name)(dim, keepdim=True))
    assert_close(k.softmax(0), t.softmax(0))
    assert_close(k.argmax(2), t.argmax(2))


def test_nan_and_inf_propagation():
    x = np.array([[1.0, np.nan, 3.0], [np.inf, -np.inf, 0.0], [-1.0, 2.0, np.nan]])
    k, t = both(x)
    for fn in [lambda a: a.amax(1), lambda a: a.amin(0), lambda a: a.max(1).values,
               lambda a: a.max(1).indices, lambda a: a.min(0).indices, lambda a: a.argmax(1),
               lambda a: a.argmin(), lambda a: a.max(), lambda a: a.sum(1), lambda a: a.mean(0),
               lambda a: a.nansum(1), lambda a: a.nanmean(1), lambda a: a.prod(0),
               lambda a: a.norm(dim=1), lambda a: a.cumsum(1), lambda a: a.var(1)]:
        assert_close(fn(k), fn(t))
    # NaN wins even when it is not first or last, in long inputs too.
    y = np.arange(5000.0)
    y[1234] = np.nan
    assert math.isnan(kiln.tensor(y).amax().item())
    assert kiln.tensor(y).argmax().item() == 1234
    assert math.isnan(kiln.tensor(y).reshape(50, 100).amin(0).select(0, 34).item())


def test_large_inputs_are_accurate():
    rng = np.random.default_rng(4)
    x = rng.standard_normal(10**6).astype(np.float32) + 3
    k, t64 = kiln.tensor(x), torch.tensor(x.astype(np.float64))
    for name in ["sum", "mean", "var", "std", "norm", "logsumexp"]:
        got = getattr(k, name)(0) if name == "logsumexp" else getattr(k, name)()
        want = getattr(t64, name)(0) if name == "logsumexp" else getattr(t64, name)()
        assert abs(got.item() - want.item()) <= 1e-6 * abs(want.item()) + 1e-6, name
    m = rng.standard_normal((1000, 1000)).astype(np.float32)
    km, tm = kiln.tensor(m), torch.tensor(m)
    for dim in [0, 1]:
        assert_close(km.sum(dim), tm.double().sum(dim).float(), rtol=1e-5, atol=1e-4)
        assert_close(km.amax(dim), tm.amax(dim))
        assert_close(km.argmin(dim), tm.argmin(dim))
        assert_close(km.softmax(dim), tm.softmax(dim), rtol=1e-5, atol=1e-7)
        assert_close(km.log_softmax(dim), tm.log_softmax(dim), rtol=1e-5, atol=1e-5)
        assert_close(km.var(dim), tm.var(dim), rtol=1e-4, atol=1e-6)
        assert_close(km.cumsum(dim).select(dim, -1), tm.double().sum(dim).float(), rtol=1e-4,
                     atol=1e-3)
    assert_close(km.transpose(0, 1).sum(0), tm.double().sum(1).float(), rtol=1e-5, atol=1e-4)


# ---- gradients ------------------------------------------------------------------------

GRAD_CASES = [
    ("sum", lambda a: a.sum((0, 2))), ("sum_all", lambda a: a.sum()),
    ("mean", lambda a: a.mean(-1, keepdim=True)), ("mean_all", lambda a: a.mean()),
    ("nansum", lambda a: a.nansum(1)), ("nanmean", lambda a: a.nanmean(0)),
    ("var", lambda a: a.var(1)), ("std", lambda a: a.std((0, 2), keepdim=True)),
    ("var_c0", lambda a: a.var(correction=0)), ("std_all", lambda a: a.std()),
    ("prod", lambda a: a.prod(1)), ("prod_all", lambda a: a.prod()),
    ("amax", lambda a: a.amax((0, 1))), ("amin", lambda a: a.amin(-1, keepdim=True)),
    ("max_dim", lambda a: a.max(1).values), ("min_dim", lambda a: a.min(0, keepdim=True)[0]),
    ("max_all", lambda a: a.max()), ("min_all", lambda a: a.min()),
    ("logsumexp", lambda a: a.logsumexp((1, 2))), ("softmax0", lambda a: a.softmax(0)),
    ("softmax", lambda a: a.softmax(-1)), ("log_softmax", lambda a: a.log_softmax(1)),
    ("log_softmax_last", lambda a: a.log_softmax(2)),
    ("cumsum", lambda a: a.cumsum(1)), ("cumprod", lambda a: a.cumprod(2)),
    ("cumprod0", lambda a: a.cumprod(0)), ("norm", lambda a: a.norm()),
    ("norm1", lambda a: a.norm(1, dim=1)), ("norm3", lambda a: a.norm(3, dim=(0, 2))),
    ("norm_inf", lambda a: a.norm(math.inf, dim=2)), ("norm_half", lambda a: a.norm(0.5)),
]


@pytest.mark.parametrize("name,fn", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_gradients_match_torch(name, fn):
    x = randn(3, 4, 5) * 0.7 + 0.3
    k, t = both(x, requires_grad=True)
    kout, tout = fn(k), fn(t)
    assert_close(kout, tout)
    g = randn(*tout.shape, rng=np.random.default_rng(9))
    kg, tg = both(g)
    (kout * kg).sum().backward()
    (tout * tg).sum().backward()
    assert_close(k.grad, t.grad)


@pytest.mark.parametrize("name,fn", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_gradcheck(name, fn):
    x = kiln.tensor(randn(2, 3, 4) * 0.7 + 0.3, requires_grad=True)
    assert kiln.autograd.gradcheck(fn, (x,))


GRADGRAD_CASES = [c for c in GRAD_CASES if c[0] in {
    "sum", "mean", "mean_all", "softmax", "softmax0", "log_softmax", "log_softmax_last", "logsumexp", "var", "std",
    "prod", "prod_all", "cumsum", "cumprod", "norm", "norm3", "amax", "max_dim"}]


@pytest.mark.parametrize("name,fn", GRADGRAD_CASES, ids=[c[0] for c in GRADGRAD_CASES])
def test_gradgradcheck(name, fn):
    x = kiln.tensor(randn(2, 3, 4) * 0.7 + 0.3, requires_grad=True)
    go = kiln.tensor(randn(*fn(x).shape, rng=np.random.default_rng(5)), requires_grad=True)

    # gradgradcheck written out: gradcheck of the first gradient (which must record a graph).
    def first_grad(a, g):
        with kiln.enable_grad():  # gradcheck evaluates finite differences under no_grad
            return kiln.autograd.grad([fn(a)], [a], [g], create_graph=True)[0]

    assert kiln.autograd.gradcheck(first_grad, (x, go))


@pytest.mark.parametrize("zeros", [[(0, 1)], [(0, 1), (2, 3)], [(0, 1), (0, 3)], [(1, 0), (1, 2), (1, 4)]])
def test_prod_and_cumprod_gradients_with_zeros(zeros):
    x = randn(3, 5) + 2
    for i, j in zeros:
        x[i, j] = 0.0
    for fn in [lambda a: a.prod(1), lambda a: a.prod(0), lambda a: a.prod(),
               lambda a: a.cumprod(1), lambda a: a.cumprod(0)]:
        k, t = both(x, requires_grad=True)
        g = randn(*fn(t).shape, rng=np.random.default_rng(6))
        (fn(k) * kiln.tensor(g)).sum().backward()
        (fn(t) * torch.tensor(g)).sum().backward()
        assert_close(k.grad, t.grad)
        assert kiln.autograd.gradcheck(fn, (kiln.tensor(x, requires_grad=True),))


def test_prod_double_backward_with_one_zero():
    x = randn(2, 4) + 2
    x[0, 1] = 0.0
    k, t = both(x, requires_grad=True)
    (gk,) = kiln.autograd.grad([k.prod(1).sum()], [k], create_graph=True)
    (gt,) = torch.autograd.grad([t.prod(1).sum()], [t], create_graph=True)
    (gk * kiln.tensor(x)).sum().backward()
    (gt * torch.tensor(x)).sum().backward()
    assert_close(k.grad, t.grad)


def test_amax_and_max_split_gradient_among_ties():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    for fn in [lambda a: a.amax(1), lambda a: a.max(), lambda a: a.amin(), lambda a: a.amax((0, 1))]:
        k, t = both(x, requires_grad=True)
        fn(k).sum().backward()
        fn(t).sum().backward()
        assert_close(k.grad, t.grad)
    k, t = both(x, requires_grad=True)
    k.max(1).values.sum().backward()
    t.max(1).values.sum().backward()
    assert_close(k.grad, t.grad)


def test_softmax_third_derivative_matches_torch():
    for name in ["softmax", "log_softmax"]:
        k, t = both(randn(3, 5), requires_grad=True)
        gk, gt = both(randn(3, 5, rng=np.random.default_rng(2)), requires_grad=True)
        (dk,) = kiln.autograd.grad([getattr(k, name)(-1)], [k], [gk], create_graph=True)
        (dt,) = torch.autograd.grad([getattr(t, name)(-1)], [t], [gt], create_graph=True)
        (ek,) = kiln.autograd.grad([(dk * dk).sum()], [k], create_graph=True)
        (et,) = torch.autograd.grad([(dt * dt).sum()], [t], create_graph=True)
        assert_close(ek, et)
        (ek * ek).sum().backward()
        (et * et).sum().backward()
        assert_close(k.grad, t.grad)
        assert_close(gk.grad, gt.grad)


def test_softmax_backward_through_dtype_cast():
    k, t = both(randn(3, 4), requires_grad=True, dtype=kiln.float32)
    k.log_softmax(1, dtype=kiln.float64).sum().backward()
    t.log_softmax(1, dtype=torch.float64).sum().backward()
    assert_close(k.grad, t.grad)
    assert k.grad.dtype == kiln.float32


def test_grad_fn_names():
    k = kiln.tensor(randn(3, 4), requires_grad=True)
    assert k.sum().grad_fn.name() == "SumBackward1"
    assert k.mean(0).grad_fn.name() == "MeanBackward1"
    assert k.softmax(1).grad_fn.name() == "SoftmaxBackward0"
    assert k.max(1).values.grad_fn.name() == "MaxBackward0"
    assert k.max(1).indices.grad_fn is None
    assert k.argmax().grad_fn is None


# ---- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("call_", [
    lambda k: k.sum(3), lambda k: k.mean(-4), lambda k: k.amax((0, 5)), lambda k: k.var(3),
    lambda k: k.std(-5), lambda k: k.prod(3), lambda k: k.max(3), lambda k: k.argmin(3),
    lambda k: k.logsumexp(3), lambda k: k.softmax(3), lambda k: k.log_softmax(-4),
    lambda k: k.cumsum(3), lambda k: k.cumprod(3), lambda k: k.norm(dim=3), lambda k: k.any(3),
    lambda k: k.all(3), lambda k: k.min(3), lambda k: k.amin(3), lambda k: k.nansum(4),
])
def test_bad_dims_raise_index_error_naming_op_and_range(call_):
    k = kiln.zeros(2, 3, 4)
    with pytest.raises(IndexError, match=r"^\[\w+\] dimension out of range \(expected to be in "
                                         r"range of \[-3, 2\], but got -?\d\)"):
        call_(k)


def test_bad_arguments():
    k = kiln.zeros(2, 3)
    with pytest.raises(ValueError, match=r"\[sum\] dim 0 appears multiple times"):
        k.sum((0, 0))
    with pytest.raises(ValueError, match=r"\[amax\] dim 1 appears multiple times"):
        k.amax((1, -1))
    with pytest.raises(TypeError, match=r"\[sum\] dim must be"):
        k.sum("a")
    with pytest.raises(TypeError, match=r"\[mean\] dim must be"):
        k.mean((0, 1.5))
    with pytest.raises(TypeError, match=r"\[max\] dim must be an int"):
        k.max((0, 1))


def test_elementwise_max_min_form():
    if not hasattr(kiln, "maximum"):
        with pytest.raises(TypeError, match=r"\[max\].*maximum"):
            kiln.max(kiln.zeros(2), kiln.ones(2))
        pytest.skip("kiln.maximum is not on this branch")
    a, ta = both(randn(3, 4))
    b, tb = both(randn(3, 4, rng=np.random.default_rng(1)))
    assert_close(kiln.max(a, b), torch.max(ta, tb))
    assert_close(a.min(b), ta.min(tb))
    assert_close(kiln.max(a, other=b), torch.max(ta, other=tb))



@pytest.mark.parametrize("dtype", [kiln.float16, kiln.bfloat16])
def test_half_precision_dtypes(dtype):
    x = randn(6, 40)
    k, t = both(x, dtype=dtype)
    for fn in [lambda a: a.sum(1), lambda a: a.mean(), lambda a: a.amax(0), lambda a: a.argmax(1),
               lambda a: a.softmax(1), lambda a: a.log_softmax(0), lambda a: a.logsumexp(1),
               lambda a: a.var(1), lambda a: a.norm(dim=1), lambda a: a.cumsum(1),
               lambda a: a.prod(0), lambda a: a.max(1).values]:
        assert_close(fn(k), fn(t), rtol=2e-2, atol=2e-2)


@pytest.mark.filterwarnings("ignore:.*degrees of freedom")
def test_random_layouts_and_dim_subsets():
    """Many random shapes, permutations, step slices and dim subsets against torch."""
    rng = np.random.default_rng(11)
    for _ in range(60):
        ndim = int(rng.integers(1, 5))
        shape = tuple(int(s) for s in rng.integers(1, 6, size=ndim))
        k, t = both(rng.standard_normal(shape))
        perm = tuple(int(p) for p in rng.permutation(ndim))
        k, t = k.permute(*perm), t.permute(*perm)
        d0 = int(rng.integers(0, ndim))
        if t.shape[d0] > 2:
            k, t = k._slice(d0, 1, None, 2), t.transpose(0, d0)[1::2].transpose(0, d0)
        dims = tuple(int(d) for d in np.flatnonzero(rng.random(ndim) < 0.5)) or (ndim - 1,)
        keepdim = bool(rng.integers(0, 2))
        assert_close(k.sum(dims, keepdim), t.sum(dims, keepdim))
        assert_close(k.amax(dims, keepdim), t.amax(dims, keepdim))
        assert_close(k.var(dims, keepdim=keepdim), t.var(dims, keepdim=keepdim))
        assert_close(k.logsumexp(dims, keepdim), t.logsumexp(dims, keepdim))
        assert_close(k.argmin(dims[0], keepdim), t.argmin(dims[0], keepdim))
        assert_close(k.softmax(dims[-1]), t.softmax(dims[-1]))
        assert_close(k.cumsum(dims[0]), t.cumsum(dims[0]))


@pytest.mark.parametrize("n", [1, 7, 8, 9, 33, 1000])
def test_float32_row_fast_paths_with_nan_and_inf(n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((5, n)).astype(np.float32)
    x[1, n // 2] = np.nan
    x[2, n - 1] = np.inf
    x[3, 0] = -np.inf
    x[4, :] = -np.inf
    k, t = both(x)
    for fn in [lambda a: a.amax(1), lambda a: a.amin(-1), lambda a: a.amax(1, keepdim=True),
               lambda a: a.softmax(1), lambda a: a.log_softmax(1), lambda a: a.logsumexp(1),
               lambda a: a.max(1).values, lambda a: a.argmax(1)]:
        assert_close(fn(k), fn(t))
