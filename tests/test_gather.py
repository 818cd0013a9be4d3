"""Index-driven ops: gather, scatter/scatter_add, index_select/index_add, take_along_dim,
one_hot, nonzero/argwhere, masked_select."""

import numpy as np
import pytest

import kiln
from compare import assert_close, both, require_torch
from join_helpers import DTYPES, check_grads, leaf, make

torch = require_torch()
hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies
gradcheck = kiln.autograd.gradcheck
gradgradcheck = kiln.autograd.gradgradcheck


def index(shape, high, seed=0, dtype=np.int64):
    return np.random.default_rng(seed).integers(0, high, shape).astype(dtype)


def kidx(arr):
    return kiln.tensor(np.asarray(arr))


def tidx(arr):
    return torch.tensor(np.asarray(arr))


# ---- gather -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
def test_gather_matches_torch(dtype, dim):
    k, t = both(make((3, 4, 5), dtype))
    shape = [2, 3, 4]
    shape[dim] = 6  # larger than the input along dim: indices may repeat
    idx = index(tuple(shape), (3, 4, 5)[dim])
    assert_close(kiln.gather(k, dim, kidx(idx)), torch.gather(t, dim, tidx(idx)))
    assert_close(k.gather(dim, kidx(idx)), t.gather(dim, tidx(idx)))


def test_gather_noncontiguous_int32_and_edge_shapes():
    k, t = both(make((5, 4)))
    idx = index((3, 4), 3)
    ki, ti = kidx(idx), tidx(idx)
    assert_close(k.transpose(0, 1).gather(1, ki.transpose(0, 1)), t.t().gather(1, ti.t()))
    assert_close(k._slice(0, 0, None, 2).gather(0, ki._slice(0, 0, None, 2)),
                 t[::2].gather(0, ti[::2]))
    assert_close(k.gather(1, ki.to(kiln.int32)), t.gather(1, ti.int()))
    kx, tx = both(make((3, 1)))
    assert_close(kx.expand(3, 4).gather(1, kidx([[3, 0]])),
                 tx.expand(3, 4).gather(1, tidx([[3, 0]])))
    # Empty index, 0-d input and index, size-1 dims.
    e = np.zeros((0, 3), dtype=np.int64)
    assert_close(k.gather(1, kidx(e)), t.gather(1, tidx(e)))
    ks, ts = both(np.array(3.5))
    assert_close(ks.gather(0, kidx(np.array(0))), ts.gather(0, tidx(np.array(0))))
    assert_close(ks.gather(0, kidx([0, 0])), ts.gather(0, tidx([0, 0])))
    assert_close(k.gather(1, kidx([[2]])), t.gather(1, tidx([[2]])))


def test_gather_errors():
    x = kiln.ones(2, 5)
    with pytest.raises(IndexError, match=r"^\[gather\] index 7 is out of bounds for dimension 1 "
                       r"with size 5$"):
        x.gather(1, kidx([[7], [0]]))
    with pytest.raises(IndexError, match=r"\[gather\] index -1 is out of bounds"):
        x.gather(1, kidx([[-1], [0]]))
    with pytest.raises(IndexError, match=r"\[gather\] index 2 is out of bounds for dimension 0"):
        x.gather(0, kidx([[0, 2]]))
    with pytest.raises(TypeError, match=r"\[gather\] expected index to have dtype int64 or int32, "
                       r"got float32"):
        x.gather(1, kiln.zeros(2, 1))
    with pytest.raises(ValueError, match=r"\[gather\] index tensor must have the same number of "
                       r"dimensions"):
        x.gather(1, kidx([1, 0]))
    with pytest.raises(ValueError, match=r"\[gather\] expected index \[3, 1\] to be no larger than "
                       r"input \[2, 5\] apart from dimension 1"):
        x.gather(1, kidx(np.zeros((3, 1), np.int64)))
    with pytest.raises(IndexError, match=r"\[gather\] dimension out of range"):
        x.gather(2, kidx([[0]]))
    # A failing index anywhere in a large (parallel) gather is still caught.
    idx = np.zeros((64, 1000), np.int64)
    idx[50, 999] = 5
    with pytest.raises(IndexError, match=r"\[gather\] index 5 is out of bounds"):
        kiln.ones(64, 5).gather(1, kidx(idx))


def test_gather_grads():
    idx = index((4, 6), 5, seed=3)  # repeated indices accumulate
    check_grads(lambda a: a.gather(1, kidx(idx)), lambda a: a.gather(1, tidx(idx)), make((4, 5)))
    i0 = idx[:, :5] % 4
    check_grads(lambda a: a.gather(0, kidx(i0)), lambda a: a.gather(0, tidx(i0)), make((4, 5)))
    a = leaf((4, 5))
    assert gradcheck(lambda x: x.gather(1, kidx(idx)), (a,))
    assert gradcheck(lambda x: x.transpose(0, 1).gather(0, kidx(idx[:2].T % 5)), (a,))
    assert gradgradcheck(lambda x: (x * x).gather(1, kidx(idx)), (a,))


def test_gather_large_parallel():
    k, t = both(make((300, 200)))
    idx = index((300, 150), 200, seed=1)
    assert_close(k.gather(1, kidx(idx)), t.gather(1, tidx(idx)))
    idx0 = index((250, 200), 300, seed=2)
    assert_close(k.gather(0, kidx(idx0)), t.gather(0, tidx(idx0)))


# ---- scatter / scatter_add ----------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_scatter_matches_torch(dtype, dim):
    k, t = both(make((4, 5), dtype))
    ks, ts = both(make((3, 4), dtype, seed=1))
    # Distinct targets along dim so the result doesn't depend on write order.
    rng = np.random.default_rng(2)
    n = (4, 5)[dim]
    cols = [rng.permutation(n)[:(3, 4)[dim]] for _ in range((3, 4)[1 - dim % 2])]
    idx = np.stack(cols, axis=1 - dim % 2).astype(np.int64)
    assert_close(k.scatter(dim, kidx(idx), ks), t.scatter(dim, tidx(idx), ts))
    assert_close(kiln.scatter(k, dim, kidx(idx), src=ks), torch.scatter(t, dim, tidx(idx), src=ts))
    value = True if dtype == "bool" else 3
    assert_close(k.scatter(dim, kidx(idx), value), t.scatter(dim, tidx(idx), value))
    assert_close(k.scatter(dim, kidx(idx), value=value), t.scatter(dim, tidx(idx), value=value))


@pytest.mark.filterwarnings("ignore:The reduce argument of torch.scatter")
@pytest.mark.parametrize("dtype", DTYPES)
def test_scatter_add_matches_torch(dtype):
    k, t = both(make((4, 5), dtype))
    ks, ts = both(make((6, 5), dtype, seed=1))
    idx = index((6, 5), 4, seed=2)  # many collisions along dim 0
    assert_close(k.scatter_add(0, kidx(idx), ks), t.scatter_add(0, tidx(idx), ts))
    assert_close(kiln.scatter_add(k, -2, kidx(idx), ks), torch.scatter_add(t, -2, tidx(idx), ts))
    assert_close(k.scatter(0, kidx(idx), ks, reduce="add"),
                 t.scatter(0, tidx(idx), ts, reduce="add"))
    if dtype != "bool":
        assert_close(k.scatter(0, kidx(idx), ks, reduce="multiply"),
                     t.scatter(0, tidx(idx), ts, reduce="multiply"))


@pytest.mark.filterwarnings("ignore:The reduce argument of torch.scatter")
def test_scatter_inplace_noncontiguous_and_edge_shapes():
    k, t = both(make((5, 4)))
    ks, ts = both(make((4, 6), seed=1))
    idx = index((3, 2), 5, seed=2)
    kv, tv = k.transpose(0, 1), t.t()
    r = kv.scatter_add_(1, kidx(idx), ks.transpose(0, 1))
    tv.scatter_add_(1, tidx(idx), ts.t())
    assert r is kv
    assert_close(k, t)
    k.scatter_(0, kidx(idx[:1]), 9.0)
    t.scatter_(0, tidx(idx[:1]), 9.0)
    assert_close(k, t)
    k.scatter_(1, kidx(idx[:, :1] % 4), ks, reduce="multiply")
    t.scatter_(1, tidx(idx[:, :1] % 4), ts, reduce="multiply")
    assert_close(k, t)
    # int32 index, src larger than index, empty index, 0-d.
    assert_close(k.scatter(0, kidx(idx).to(kiln.int32), ks), t.scatter(0, tidx(idx).int(), ts))
    e = np.zeros((0, 4), np.int64)
    assert_close(k.scatter_add(0, kidx(e), ks), t.scatter_add(0, tidx(e), ts))
    k0, t0 = both(np.array(1.0))
    assert_close(k0.scatter(0, kidx(np.array(0)), 2.0), t0.scatter(0, tidx(np.array(0)), 2.0))


def test_scatter_add_large_parallel_is_race_free():
    k, t = both(np.zeros((8, 40000)))
    ks, ts = both(np.ones((300, 40000)))
    idx = index((300, 40000), 8, seed=4)
    assert_close(k.scatter_add(0, kidx(idx), ks), t.scatter_add(0, tidx(idx), ts))
    ki, ti = both(np.zeros((40000, 8)))
    assert_close(ki.scatter_add(1, kidx(idx.T.copy()), ks.transpose(0, 1)),
                 ti.scatter_add(1, tidx(idx.T.copy()), ts.t()))


def test_scatter_errors():
    x = kiln.zeros(2, 5)
    src = kiln.ones(2, 5)
    with pytest.raises(IndexError, match=r"^\[scatter\] index 5 is out of bounds for dimension 1 "
                       r"with size 5$"):
        x.scatter(1, kidx([[5], [0]]), src)
    with pytest.raises(IndexError, match=r"\[scatter_add\] index -1 is out of bounds"):
        x.scatter_add(1, kidx([[-1], [0]]), src)
    with pytest.raises(IndexError, match=r"\[scatter_\] index 9 is out of bounds"):
        x.scatter_(1, kidx([[9]]), 1.0)
    with pytest.raises(TypeError, match=r"\[scatter\] expected self\.dtype to be equal to "
                       r"src\.dtype, got float32 and float64"):
        x.scatter(1, kidx([[0]]), kiln.ones(1, 1, dtype=kiln.float64))
    with pytest.raises(TypeError, match=r"\[scatter_add\] expected index to have dtype int64"):
        x.scatter_add(1, kiln.zeros(1, 1), src)
    with pytest.raises(ValueError, match=r"\[scatter_add\] expected index \[1, 6\] to be no larger "
                       r"than self \[2, 5\] apart from dimension 1 and to be no larger than src "
                       r"\[2, 1\]"):
        x.scatter_add(1, kidx(np.zeros((1, 6), np.int64)), kiln.ones(2, 1))
    with pytest.raises(ValueError, match=r"\[scatter\] index tensor must have the same number"):
        x.scatter(1, kidx([0]), src)
    with pytest.raises(ValueError, match=r"\[scatter\] reduce argument must be either 'add' or "
                       r"'multiply', got 'mean'"):
        x.scatter(1, kidx([[0]]), src, reduce="mean")
    with pytest.raises(TypeError, match=r"\[scatter\] expected exactly one of src"):
        x.scatter(1, kidx([[0]]))
    with pytest.raises(TypeError, match=r"\[scatter\] expected src to be a Tensor"):
        x.scatter(1, kidx([[0]]), "a")
    with pytest.raises(RuntimeError, match=r"\[scatter_\] a leaf Variable"):
        leaf((2, 5)).scatter_(1, kidx([[0]]), 1.0)
    # Nothing is written out of bounds even when the check fires mid-way (in place).
    y = kiln.zeros(2, 3)
    with pytest.raises(IndexError):
        y.scatter_(1, kidx([[0, 1, 3]]), kiln.ones(1, 3))
    assert y.tolist()[1] == [0.0, 0.0, 0.0]


def test_scatter_grads():
    idx = np.array([[1, 0, 3], [2, 4, 0]])
    check_grads(lambda a, s: a.scatter(1, kidx(idx), s), lambda a, s: a.scatter(1, tidx(idx), s),
                make((2, 5)), make((2, 3), seed=1))
    check_grads(lambda a: a.scatter(1, kidx(idx), 2.0), lambda a: a.scatter(1, tidx(idx), 2.0),
                make((2, 5)))
    rep = np.array([[1, 1, 3], [0, 0, 0]])
    check_grads(lambda a, s: a.scatter_add(1, kidx(rep), s),
                lambda a, s: a.scatter_add(1, tidx(rep), s), make((2, 5)), make((2, 3), seed=1))
    # torch has no derivative for reduce="add"; it equals scatter_add's.
    check_grads(lambda a, s: a.scatter(1, kidx(rep), s, reduce="add"),
                lambda a, s: a.scatter_add(1, tidx(rep), s), make((2, 5)), make((2, 3), seed=1))
    a, s = leaf((2, 5)), leaf((2, 3), 1)
    assert gradcheck(lambda x, y: x.scatter(1, kidx(idx), y), (a, s))
    assert gradcheck(lambda x, y: x.scatter_add(1, kidx(rep), y), (a, s))
    assert gradcheck(lambda x: x.scatter(0, kidx([[1, 0, 1, 0, 1]]), 0.5), (a,))
    # src larger than index: the unused part of src gets zero gradient (torch refuses this).
    big = leaf((3, 4), 2)
    assert gradcheck(lambda x, y: x.scatter(1, kidx(idx[:, :2]), y), (a, big))
    assert gradcheck(lambda x, y: x.scatter_add(1, kidx(rep[:, :2]), y), (a, big))
    assert gradgradcheck(lambda x, y: x.scatter_add(1, kidx(rep), y * y), (a, s))
    first3 = kidx([0, 1, 2])
    assert gradgradcheck(
        lambda x, y: (x * x).scatter(1, kidx(idx), y * x.index_select(1, first3)), (a, s))
    with pytest.raises(NotImplementedError, match=r"\[scatter\] the derivative for "
                       r"reduce='multiply'"):
        a.scatter(1, kidx(idx), s, reduce="multiply")


def test_scatter_inplace_autograd():
    a, ta = both(make((2, 5)), requires_grad=True)
    s, ts = both(make((2, 3), seed=1), requires_grad=True)
    idx = np.array([[1, 0, 3], [2, 4, 0]])
    y, ty = a * 1, ta * 1
    y.scatter_(1, kidx(idx), s)
    ty.scatter_(1, tidx(idx), ts)
    (y * y).sum().backward()
    (ty * ty).sum().backward()
    assert_close(a.grad, ta.grad)
    assert_close(s.grad, ts.grad)


# ---- index_select / index_add -------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_index_select_matches_torch(dtype, dim):
    k, t = both(make((3, 4, 5), dtype))
    idx = index((7,), (3, 4, 5)[dim])
    assert_close(k.index_select(dim, kidx(idx)), t.index_select(dim, tidx(idx)))
    assert_close(kiln.index_select(k, dim, kidx(idx).to(kiln.int32)),
                 torch.index_select(t, dim, tidx(idx).int()))
    kv, tv = k.transpose(0, 2), t.transpose(0, 2)
    assert_close(kv.index_select(dim, kidx(idx % 3)), tv.index_select(dim, tidx(idx % 3)))


def test_index_select_edge_cases():
    k, t = both(make((4, 3)))
    ki = kidx([3, 1, 2, 0, 2])
    assert_close(k.index_select(0, ki._slice(0, 0, None, 2)), t.index_select(0, tidx([3, 2, 2])))
    e = np.zeros(0, np.int64)
    assert_close(k.index_select(1, kidx(e)), t.index_select(1, tidx(e)))
    assert_close(k.index_select(0, kidx(np.array(2))), t.index_select(0, tidx(np.array(2))))
    ks, ts = both(np.array(1.5))
    assert_close(ks.index_select(0, kidx([0])), ts.index_select(0, tidx([0])))
    kz, tz = both(make((0, 3)))
    assert_close(kz.index_select(1, kidx([2, 0])), tz.index_select(1, tidx([2, 0])))
    kb, tb = both(make((600, 100)))
    big = index((500,), 600, seed=3)
    assert_close(kb.index_select(0, kidx(big)), tb.index_select(0, tidx(big)))
    assert_close(kb.index_select(1, kidx(big % 100)), tb.index_select(1, tidx(big % 100)))


def test_index_select_errors():
    x = kiln.ones(2, 5)
    with pytest.raises(IndexError, match=r"^\[index_select\] index 5 is out of bounds for "
                       r"dimension 1 with size 5$"):
        x.index_select(1, kidx([0, 5]))
    with pytest.raises(IndexError, match=r"\[index_select\] index -1 is out of bounds"):
        x.index_select(1, kidx([-1]))
    with pytest.raises(IndexError, match=r"\[index_select\] index is supposed to be a vector"):
        x.index_select(1, kidx([[1]]))
    with pytest.raises(TypeError, match=r"\[index_select\] expected index to have dtype int64 or "
                       r"int32, got float32"):
        x.index_select(1, kiln.zeros(1))
    with pytest.raises(IndexError, match=r"\[index_select\] index to a 0-dim tensor can have only "
                       r"1 value, got 2"):
        kiln.tensor(1.0).index_select(0, kidx([0, 0]))


def test_index_select_grads():
    idx = np.array([2, 0, 2, 3])
    check_grads(lambda a: a.index_select(0, kidx(idx)), lambda a: a.index_select(0, tidx(idx)),
                make((4, 3)))
    check_grads(lambda a: a.index_select(-1, kidx(idx % 3)),
                lambda a: a.index_select(-1, tidx(idx % 3)), make((4, 3)))
    a = leaf((4, 3))
    assert gradcheck(lambda x: x.index_select(0, kidx(idx)), (a,))
    assert gradcheck(lambda x: x.transpose(0, 1).index_select(1, kidx(idx)), (a,))
    assert gradgradcheck(lambda x: (x * x).index_select(1, kidx([2, 2, 0])), (a,))
    s = kiln.tensor(2.0, dtype=kiln.float64, requires_grad=True)
    assert gradcheck(lambda x: x.index_select(0, kidx([0])), (s,))


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_index_add_matches_torch(dtype, dim):
    k, t = both(make((4, 5), dtype))
    n = (4, 5)[dim]
    idx = index((6,), n, seed=1)  # repeats accumulate
    src_shape = [4, 5]
    src_shape[dim] = 6
    ks, ts = both(make(tuple(src_shape), dtype, seed=2))
    assert_close(k.index_add(dim, kidx(idx), ks), t.index_add(dim, tidx(idx), ts))
    assert_close(kiln.index_add(k, dim, kidx(idx).to(kiln.int32), ks, alpha=3),
                 torch.index_add(t, dim, tidx(idx).int(), ts, alpha=3))
    kv, tv = k.transpose(0, 1), t.t()
    dv = 1 - dim % 2
    r = kv.index_add_(dv, kidx(idx), ks.transpose(0, 1), alpha=2)
    tv.index_add_(dv, tidx(idx), ts.t(), alpha=2)
    assert r is kv
    assert_close(k, t)


def test_index_add_errors():
    x = kiln.zeros(2, 5)
    with pytest.raises(IndexError, match=r"^\[index_add\] index 7 is out of bounds for "
                       r"dimension 1 with size 5$"):
        x.index_add(1, kidx([7]), kiln.ones(2, 1))
    with pytest.raises(IndexError, match=r"\[index_add_\] index -1 is out of bounds"):
        x.index_add_(1, kidx([-1]), kiln.ones(2, 1))
    with pytest.raises(TypeError, match=r"\[index_add\] self \(float32\) and source \(float64\) "
                       r"must have the same scalar type"):
        x.index_add(1, kidx([1]), kiln.ones(2, 1, dtype=kiln.float64))
    with pytest.raises(ValueError, match=r"\[index_add\] number of indices \(1\) should be equal "
                       r"to source\.size\(dim\) \(2\), for dim 1"):
        x.index_add(1, kidx([1]), kiln.ones(2, 2))
    with pytest.raises(ValueError, match=r"\[index_add\] source tensor shape must match self "
                       r"tensor shape, excluding the specified dimension\. Got self\.shape = "
                       r"\[2, 5\] source\.shape = \[3, 1\]"):
        x.index_add(1, kidx([1]), kiln.ones(3, 1))
    with pytest.raises(TypeError, match=r"\[index_add\] for integral input tensors, argument "
                       r"alpha must not be a floating point number"):
        kiln.zeros(2, dtype=kiln.int64).index_add(0, kidx([1]), kiln.ones(1, dtype=kiln.int64),
                                                  alpha=0.5)
    with pytest.raises(IndexError, match=r"\[index_add\] index is supposed to be a vector"):
        x.index_add(1, kidx([[1]]), kiln.ones(2, 1))


def test_index_add_grads():
    idx = np.array([1, 3, 1])
    check_grads(lambda a, s: a.index_add(0, kidx(idx), s),
                lambda a, s: a.index_add(0, tidx(idx), s), make((4, 3)), make((3, 3), seed=1))
    check_grads(lambda a, s: a.index_add(1, kidx(idx % 3), s, alpha=-2.5),
                lambda a, s: a.index_add(1, tidx(idx % 3), s, alpha=-2.5), make((4, 3)),
                make((4, 3), seed=1))
    a, s = leaf((4, 3)), leaf((3, 3), 1)
    assert gradcheck(lambda x, y: x.index_add(0, kidx(idx), y, alpha=2), (a, s))
    assert gradgradcheck(lambda x, y: (x * x).index_add(0, kidx(idx), y * y), (a, s))
    # In place under autograd.
    b, tb = both(make((4, 3)), requires_grad=True)
    y, ty = b * 1, tb * 1
    y.index_add_(0, kidx(idx), b.index_select(0, kidx([0, 1, 2])))
    ty.index_add_(0, tidx(idx), tb.index_select(0, tidx([0, 1, 2])))
    (y * y).sum().backward()
    (ty * ty).sum().backward()
    assert_close(b.grad, tb.grad)


# ---- take_along_dim -----------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_take_along_dim_matches_torch(dtype):
    k, t = both(make((3, 4, 5), dtype))
    idx = index((3, 2, 5), 4)
    assert_close(kiln.take_along_dim(k, kidx(idx), 1), torch.take_along_dim(t, tidx(idx), 1))
    assert_close(k.take_along_dim(kidx(idx), dim=-2), t.take_along_dim(tidx(idx), dim=-2))
    bidx = index((1, 2, 1), 4, seed=1)  # broadcasts against input
    assert_close(k.take_along_dim(kidx(bidx), 1), t.take_along_dim(tidx(bidx), 1))
    kb, tb = both(make((1, 4, 1), dtype))
    assert_close(kb.take_along_dim(kidx(idx), 1), tb.take_along_dim(tidx(idx), 1))
    flat = index((7,), 60, seed=2)
    assert_close(k.take_along_dim(kidx(flat)), t.take_along_dim(tidx(flat)))
    assert_close(k.transpose(0, 2).take_along_dim(kidx(flat)),
                 t.transpose(0, 2).reshape(-1)[tidx(flat)])


def test_take_along_dim_errors_and_grads():
    x = kiln.ones(2, 5)
    with pytest.raises(TypeError, match=r"\[take_along_dim\] dtype of indices should be int64, "
                       r"got int32"):
        x.take_along_dim(kidx([[1]]).to(kiln.int32), 1)
    with pytest.raises(ValueError, match=r"\[take_along_dim\] input and indices should have the "
                       r"same number of dimensions, but got 2 dimensions for input, and 1"):
        x.take_along_dim(kidx([1]), 1)
    with pytest.raises(IndexError, match=r"\[take_along_dim\] index 10 is out of bounds"):
        x.take_along_dim(kidx([10]))
    with pytest.raises(ValueError, match=r"\[take_along_dim\] shapes"):
        x.take_along_dim(kidx(np.zeros((3, 1), np.int64)), 1)
    idx = np.array([[[1], [0], [1]]])
    check_grads(lambda a: a.take_along_dim(kidx(idx), 2), lambda a: a.take_along_dim(tidx(idx), 2),
                make((2, 3, 2)))
    a = leaf((2, 3, 2))
    assert gradcheck(lambda x: x.take_along_dim(kidx(idx), 2), (a,))
    assert gradcheck(lambda x: x.take_along_dim(kidx([0, 5, 5, 11])), (a,))
    # The input broadcasts against the indices: its gradient sums over the broadcast.
    bidx = index((3, 2, 5), 4, seed=4)
    check_grads(lambda a: a.take_along_dim(kidx(bidx), 1),
                lambda a: a.take_along_dim(tidx(bidx), 1), make((1, 4, 1)))
    assert gradcheck(lambda x: x.take_along_dim(kidx(bidx), 1), (leaf((1, 4, 1)),))


# ---- one_hot ------------------------------------------------------------------------


def test_one_hot_matches_torch():
    F = torch.nn.functional
    for arr, n in [([0, 2, 1], -1), ([0, 2, 1], 5), ([[1, 0], [3, 3]], -1), (np.array(2), 3),
                   (np.zeros((0,), np.int64), 3), ([0], 0 + 1)]:
        k, t = kidx(arr), tidx(arr)
        assert_close(kiln.one_hot(k, n), F.one_hot(t, n))
        assert_close(kiln._C.one_hot(k, num_classes=n), F.one_hot(t, num_classes=n))
    k = kidx(np.arange(12).reshape(3, 4))
    assert_close(kiln.one_hot(k.transpose(0, 1)), F.one_hot(tidx(np.arange(12).reshape(3, 4)).t()))


def test_one_hot_errors():
    with pytest.raises(TypeError, match=r"\[one_hot\] is only applicable to index tensors of "
                       r"dtype int64, got int32"):
        kiln.one_hot(kidx([1]).to(kiln.int32))
    with pytest.raises(ValueError, match=r"\[one_hot\] class values must be non-negative, got -2"):
        kiln.one_hot(kidx([1, -2]))
    with pytest.raises(ValueError, match=r"\[one_hot\] class values must be smaller than "
                       r"num_classes \(3\), got 5"):
        kiln.one_hot(kidx([1, 5]), 3)
    with pytest.raises(ValueError, match=r"\[one_hot\] can not infer the total number of classes "
                       r"from an empty tensor"):
        kiln.one_hot(kidx(np.zeros(0, np.int64)))
    with pytest.raises(ValueError, match=r"\[one_hot\] num_classes must be -1 or non-negative"):
        kiln.one_hot(kidx([1]), -2)


# ---- nonzero / argwhere / masked_select ---------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES + ["float16"])
def test_nonzero_matches_torch(dtype):
    base = make((3, 4, 5), "int64" if dtype == "float16" else dtype) % 2 if dtype != "bool" \
        else make((3, 4, 5), "bool")
    k, t = both(np.asarray(base).astype(dtype))
    assert_close(k.nonzero(), t.nonzero())
    assert_close(kiln.nonzero(k), torch.nonzero(t))
    assert_close(list(k.nonzero(as_tuple=True)), list(t.nonzero(as_tuple=True)))
    assert isinstance(k.nonzero(as_tuple=True), tuple)
    assert_close(kiln.argwhere(k), torch.argwhere(t))
    assert_close(k.transpose(0, 2).nonzero(), t.transpose(0, 2).nonzero())


def test_nonzero_edge_cases_and_large():
    for arr in [np.array(3.0), np.array(0.0), np.zeros((0, 3)), np.zeros((2, 3)),
                np.array([np.nan, 0.0, -0.0, 1e-30])]:
        k, t = both(arr)
        assert_close(k.nonzero(), t.nonzero())
        assert_close(list(k.nonzero(as_tuple=True)), list(t.nonzero(as_tuple=True)))
    big = np.random.default_rng(5).random((300, 500)) > 0.7
    k, t = both(big)
    assert_close(k.nonzero(), t.nonzero())


def test_masked_select_matches_torch_and_grads():
    k, t = both(make((3, 4)))
    m = make((3, 4), "bool", seed=1)
    assert_close(k.masked_select(kiln.tensor(m)), t.masked_select(torch.tensor(m)))
    mb = make((4,), "bool", seed=2)  # broadcasts over rows
    assert_close(kiln.masked_select(k, kiln.tensor(mb)), torch.masked_select(t, torch.tensor(mb)))
    kc, tc = both(make((3, 1)))
    assert_close(kc.masked_select(kiln.tensor(m)), tc.masked_select(torch.tensor(m)))
    assert_close(k.transpose(0, 1).masked_select(kiln.tensor(m.T.copy())),
                 t.t().masked_select(torch.tensor(m.T.copy())))
    for shape in [(3, 4), (3, 1)]:
        check_grads(lambda a: a.masked_select(kiln.tensor(m)),
                    lambda a: a.masked_select(torch.tensor(m)), make(shape))
    a = leaf((3, 4))
    assert gradcheck(lambda x: x.masked_select(kiln.tensor(mb)), (a,))
    with pytest.raises(TypeError, match=r"\[masked_select\] expected a bool mask, got int64"):
        k.masked_select(kidx([1, 0, 1, 0]))
    with pytest.raises(ValueError, match=r"\[masked_select\] shapes"):
        k.masked_select(kiln.tensor(make((5,), "bool")))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "int32", "uint8", "int8"])
def test_other_dtypes_match_torch(dtype):
    kd, td = getattr(kiln, dtype), getattr(torch, dtype)
    k, t = both(make((4, 5), "int64") % 4 + 1, dtype=kd)
    ks, ts = both(make((3, 5), "int64", seed=1) % 3, dtype=kd)
    idx = index((3, 5), 4, seed=2)
    assert_close(k.gather(0, kidx(idx)), t.gather(0, tidx(idx)))
    assert_close(k.scatter_add(0, kidx(idx), ks), t.scatter_add(0, tidx(idx), ts))
    assert_close(k.scatter(0, kidx(idx[:1]), ks), t.scatter(0, tidx(idx[:1]), ts))
    assert_close(k.index_select(1, kidx([4, 0, 4])), t.index_select(1, tidx([4, 0, 4])))
    assert_close(k.index_add(0, kidx([3, 3, 0]), ks), t.index_add(0, tidx([3, 3, 0]), ts))
    assert_close(k.nonzero(), t.nonzero())
    assert_close(kiln.cat([k, ks]), torch.cat([t, ts]))
    assert_close(k.flip(0, 1), t.flip(0, 1))
    assert_close(k.roll(2, 1), t.roll(2, 1))
    assert_close(k.tril(1), t.tril(1))
    assert_close(k.repeat(2, 1), t.repeat(2, 1))
    assert_close(kiln.cat([k, ks.to(kiln.float64)]), torch.cat([t, ts.to(torch.float64)]))
    del td


# ---- random shapes (hypothesis) -----------------------------------------------------

@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(shape=st.lists(st.integers(0, 4), min_size=1, max_size=4),
                  data=st.data())
def test_random_shapes_match_torch(shape, data):
    ndim = len(shape)
    dim = data.draw(st.integers(-ndim, ndim - 1))
    d = dim % ndim
    seed = data.draw(st.integers(0, 1000))
    k, t = both(make(tuple(shape), seed=seed))
    # gather / scatter_add: index no larger than input apart from dim.
    ishape = tuple(data.draw(st.integers(0, s)) if i != d else data.draw(st.integers(0, 5))
                   for i, s in enumerate(shape))
    if shape[d] > 0 or 0 in ishape:
        idx = index(ishape, max(shape[d], 1), seed=seed)
        assert_close(k.gather(dim, kidx(idx)), t.gather(dim, tidx(idx)))
        src = make(ishape, seed=seed + 1)
        assert_close(k.scatter_add(dim, kidx(idx), kiln.tensor(src)),
                     t.scatter_add(dim, tidx(idx), torch.tensor(src)))
    if shape[d] > 0:
        sel = index((data.draw(st.integers(0, 6)),), shape[d], seed=seed)
        assert_close(k.index_select(dim, kidx(sel)), t.index_select(dim, tidx(sel)))
    other = list(shape)
    other[d] = data.draw(st.integers(0, 3))
    ko, to = both(make(tuple(other), seed=seed + 2))
    assert_close(kiln.cat([k, ko], dim), torch.cat([t, to], dim))
    assert_close(k.flip(dim), t.flip(dim))
    assert_close(k.roll(seed % 7 - 3, dim), t.roll(seed % 7 - 3, dim))
    assert_close(k.nonzero(), t.nonzero())
