"""sort, argsort, topk, unique: differential against PyTorch, gradients, errors."""

import kiln
import numpy as np
import pytest
from compare import assert_close, both, randn, require_torch

FLOAT_AND_INT = ["float32", "float64", "int64", "int32", "int8", "uint8"]


def _data(shape, dtype, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    if ties:
        return rng.integers(0, 3, size=shape).astype(dtype)
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    # Distinct integers so indices are unique too.
    n = int(np.prod(shape))
    return rng.permutation(np.arange(n) % 100 if dtype == "uint8" else np.arange(n) - n // 2) \
        .reshape(shape).astype(dtype)


@pytest.mark.parametrize("dtype", FLOAT_AND_INT)
@pytest.mark.parametrize("shape,dim", [((7,), -1), ((3, 5), 0), ((3, 5), 1), ((2, 3, 4), 1),
                                       ((2, 3, 4), -1), ((1, 6), 0), ((4, 1), 1)])
@pytest.mark.parametrize("descending", [False, True])
def test_sort_matches_torch(dtype, shape, dim, descending):
    torch = require_torch()
    x = _data(shape, dtype)
    k, t = both(x)
    kv, ki = kiln.sort(k, dim, descending)
    tv, ti = torch.sort(t, dim, descending)
    assert_close(kv, tv)
    if len(np.unique(x)) == x.size:
        assert_close(ki, ti)
    assert_close(kiln.argsort(k, dim, descending), torch.argsort(t, dim, descending) if
                 len(np.unique(x)) == x.size else ki)


@pytest.mark.parametrize("descending", [False, True])
def test_sort_ties_stable_matches_torch(descending):
    require_torch()
    x = _data((4, 20), "float64", ties=True)
    k, t = both(x)
    kv, ki = k.sort(dim=1, descending=descending, stable=True)
    tv, ti = t.sort(dim=1, descending=descending, stable=True)
    assert_close(kv, tv)
    assert_close(ki, ti)
    assert_close(k.argsort(dim=1, descending=descending, stable=True),
                 t.argsort(dim=1, descending=descending, stable=True))


@pytest.mark.parametrize("descending", [False, True])
def test_sort_nan_is_largest(descending):
    torch = require_torch()
    x = np.array([[3.0, np.nan, -1.0, np.inf, np.nan, -np.inf, 0.0]])
    k, t = both(x)
    kv, ki = kiln.sort(k, descending=descending, stable=True)
    tv, ti = torch.sort(t, descending=descending, stable=True)
    assert_close(kv, tv)
    assert_close(ki, ti)
    kv, ki = kiln.topk(k, 3, largest=not descending)
    tv, ti = torch.topk(t, 3, largest=not descending)
    assert_close(kv, tv)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "bool"])
def test_sort_other_dtypes(dtype):
    torch = require_torch()
    x = _data((3, 9), "float32") if dtype != "bool" else _data((3, 9), "int64", ties=True) > 0
    k, t = both(x, dtype=getattr(kiln, dtype))
    kv, ki = kiln.sort(k, stable=True)
    tv, ti = torch.sort(t, stable=True)
    assert_close(kv, tv)
    assert_close(ki, ti)


def test_sort_noncontiguous_and_edge_shapes():
    torch = require_torch()
    x = randn(4, 6)
    k, t = both(x)
    for kk, tt in [(k.transpose(0, 1), t.transpose(0, 1)), (k._slice(1, 0, 6, 2), t[:, ::2]),
                   (k._slice(0, 1, 3, 1).expand(2, 2, 6), t[1:3].expand(2, 2, 6))]:
        for dim in range(kk.dim()):
            kv, ki = kk.sort(dim)
            tv, ti = tt.sort(dim)
            assert_close(kv, tv)
            assert_close(ki, ti)
            assert kv.is_contiguous()
    for shape in [(0,), (0, 3), (3, 0), (2, 1)]:
        k, t = both(np.zeros(shape))
        for dim in range(len(shape)):
            kv, ki = kiln.sort(k, dim)
            tv, ti = torch.sort(t, dim)
            assert_close(kv, tv)
            assert_close(ki, ti)
    k, t = both(np.array(2.5))
    kv, ki = kiln.sort(k)
    assert_close(kv, torch.sort(t).values)
    assert_close(ki, torch.sort(t).indices)


def test_sort_returns_named_tuple():
    r = kiln.sort(kiln.tensor([2.0, 1.0]))
    values, indices = r
    assert r.values is values and r.indices is indices
    assert type(r).__name__ == "sort" and type(r) is kiln.return_types.sort
    assert r[0].tolist() == [1.0, 2.0] and r[1].tolist() == [1, 0]
    assert "values=" in repr(r)
    t = kiln.topk(kiln.tensor([2.0, 1.0, 3.0]), 2)
    assert type(t) is kiln.return_types.topk and t.indices.tolist() == [2, 0]
    assert not r.indices.requires_grad


@pytest.mark.parametrize("dtype", FLOAT_AND_INT)
@pytest.mark.parametrize("shape,k,dim", [((10,), 3, -1), ((4, 7), 2, 1), ((4, 7), 4, 0),
                                         ((2, 3, 5), 5, 2), ((2, 3, 5), 0, 1), ((5,), 5, 0)])
@pytest.mark.parametrize("largest", [True, False])
def test_topk_matches_torch(dtype, shape, k, dim, largest):
    torch = require_torch()
    kt, tt = both(_data(shape, dtype))
    kv, ki = kiln.topk(kt, k, dim, largest)
    tv, ti = torch.topk(tt, k, dim, largest)
    assert_close(kv, tv)
    assert_close(ki, ti)  # values are distinct: indices are determined
    kv2 = kt.topk(k, dim=dim, largest=largest, sorted=False).values
    tv2 = tt.topk(k, dim=dim, largest=largest, sorted=False).values
    assert sorted(kv2.reshape(-1).tolist()) == sorted(tv2.reshape(-1).tolist())


def test_topk_ties_values_and_noncontiguous():
    torch = require_torch()
    x = _data((5, 12), "float64", ties=True)
    k, t = both(x)
    kv, ki = kiln.topk(k.transpose(0, 1), 3, dim=0)
    tv, _ = torch.topk(t.transpose(0, 1), 3, dim=0)
    assert_close(kv, tv)
    # Indices point at the values they report.
    xt, ki, kv = x.T, ki.numpy(), kv.numpy()
    for j in range(xt.shape[1]):
        assert (xt[ki[:, j], j] == kv[:, j]).all()


def test_topk_errors():
    x = kiln.zeros(3, 4)
    with pytest.raises(IndexError, match=r"\[topk\] selected index k=5 out of range"):
        kiln.topk(x, 5)
    with pytest.raises(IndexError, match=r"\[topk\] selected index k=-1"):
        x.topk(-1)
    with pytest.raises(IndexError, match=r"\[topk\] dimension out of range"):
        kiln.topk(x, 1, dim=2)
    with pytest.raises(IndexError, match=r"\[sort\] dimension out of range"):
        kiln.sort(x, 3)
    with pytest.raises(IndexError, match=r"\[argsort\] dimension out of range"):
        kiln.argsort(x, -3)


@pytest.mark.parametrize("dim,descending", [(0, False), (1, True), (-1, False)])
def test_sort_backward_matches_torch(dim, descending):
    torch = require_torch()
    x = randn(3, 5)
    g = randn(3, 5, rng=np.random.default_rng(1))
    k, t = both(x, requires_grad=True)
    kiln.sort(k, dim, descending).values.backward(kiln.tensor(g))
    torch.sort(t, dim, descending).values.backward(torch.tensor(g))
    assert_close(k.grad, t.grad)


def test_topk_backward_matches_torch():
    torch = require_torch()
    x = randn(4, 6)
    k, t = both(x, requires_grad=True)
    (kiln.topk(k, 3, dim=1).values * kiln.arange(3.0, dtype=kiln.float64)).sum().backward()
    (torch.topk(t, 3, dim=1).values * torch.arange(3.0, dtype=torch.float64)).sum().backward()
    assert_close(k.grad, t.grad)


def _double_backward_check(fn, x):
    """gradcheck of x -> d(fn(x) . g)/dx: checks the backward's own backward."""
    from kiln.autograd import gradcheck

    g = kiln.tensor(randn(*fn(x).shape, rng=np.random.default_rng(2))).requires_grad_()

    def first_grad(a, go):
        with kiln.enable_grad():
            return kiln.autograd.grad(fn(a), a, go, create_graph=True)[0]

    return gradcheck(first_grad, (x, g))


def test_sort_topk_gradcheck():
    from kiln.autograd import gradcheck

    x = kiln.tensor(randn(3, 4)).requires_grad_()
    assert gradcheck(lambda a: kiln.sort(a, 0).values, (x,))
    assert gradcheck(lambda a: kiln.sort(a, 1, descending=True).values, (x,))
    assert gradcheck(lambda a: kiln.topk(a, 2, dim=1).values, (x,))
    assert gradcheck(lambda a: kiln.topk(a.transpose(0, 1), 2, dim=0, largest=False).values, (x,))
    assert _double_backward_check(lambda a: kiln.sort(a, 1).values * kiln.sort(a, 1).values, x)
    assert _double_backward_check(lambda a: kiln.topk(a, 3).values * kiln.topk(a, 3).values, x)


@pytest.mark.parametrize("dtype", FLOAT_AND_INT + ["bool"])
def test_unique_matches_torch(dtype):
    torch = require_torch()
    x = np.random.default_rng(0).integers(0, 5, size=(4, 6)).astype(dtype)
    k, t = both(x)
    assert_close(kiln.unique(k), torch.unique(t))
    for inv in (False, True):
        for cnt in (False, True):
            assert_close(kiln.unique(k, return_inverse=inv, return_counts=cnt),
                         torch.unique(t, return_inverse=inv, return_counts=cnt))
    assert_close(k.unique(return_inverse=True)[1], t.unique(return_inverse=True)[1])


def test_unique_edge_cases():
    torch = require_torch()
    for x in [np.zeros((0,)), np.array(3.0), np.array([[1.0], [1.0]]),
              np.array([np.nan, 1.0, np.nan, 1.0])]:
        k, t = both(x)
        assert_close(kiln.unique(k, return_inverse=True, return_counts=True),
                     torch.unique(t, return_inverse=True, return_counts=True))
    k, t = both(randn(3, 4).round())
    assert_close(kiln.unique(k.transpose(0, 1), return_inverse=True),
                 torch.unique(t.transpose(0, 1), return_inverse=True))
    # sorted=False promises no order; kiln returns the sorted result.
    assert sorted(kiln.unique(k, sorted=False).tolist()) == sorted(torch.unique(t).tolist())
    with pytest.raises(ValueError, match=r"\[unique\] dim is not supported yet"):
        kiln.unique(k, dim=0)
    assert not kiln.unique(kiln.ones(3, requires_grad=True)).requires_grad
