"""Joining and rearranging ops: cat/stack/hstack/vstack, repeat/tile, flip, roll, tril/triu."""

import numpy as np
import pytest

import kiln
from compare import assert_close, both, require_torch
from join_helpers import DTYPES, check_grads, leaf, make

torch = require_torch()
gradcheck = kiln.autograd.gradcheck
gradgradcheck = kiln.autograd.gradgradcheck

# ---- cat -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [0, 1, -1, -3])
def test_cat_matches_torch(dtype, dim):
    arrays = [make((2, 3, 4), dtype, 1), make((2, 3, 4), dtype, 2)]
    shape3 = [2, 3, 4]
    shape3[dim] = 1
    arrays.append(make(tuple(shape3), dtype, 3))
    ks, ts = zip(*[both(a) for a in arrays])
    assert_close(kiln.cat(list(ks), dim), torch.cat(list(ts), dim))
    assert_close(kiln.cat(tuple(ks), dim=dim), torch.cat(ts, dim=dim))


@pytest.mark.parametrize("dtypes", [("float32", "float64"), ("int64", "float32"),
                                    ("bool", "int64"), ("bool", "bool"), ("int32", "int64")])
def test_cat_promotes_dtypes(dtypes):
    ks, ts = zip(*[both(make((2, 3), "int64" if d == "int32" else d, i), dtype=getattr(kiln, d))
                   for i, d in enumerate(dtypes)])
    assert_close(kiln.cat(list(ks), 1), torch.cat(list(ts), 1))


def test_cat_noncontiguous_inputs():
    k1, t1 = both(make((4, 3)))
    k2, t2 = both(make((6, 4), seed=1))
    k3, t3 = both(make((4, 1), seed=2))
    kv = [k1, k2.transpose(0, 1)._slice(1, 0, None, 2), k3.expand(4, 5)]
    tv = [t1, t2.transpose(0, 1)[:, ::2], t3.expand(4, 5)]
    assert not kv[1].is_contiguous()
    assert_close(kiln.cat(kv, 1), torch.cat(tv, 1))
    assert_close(kiln.cat([k1.transpose(0, 1), k3.transpose(0, 1)], 0),
                 torch.cat([t1.t(), t3.t()], 0))


def test_cat_empty_and_size_one():
    ka, ta = both(make((0, 3)))
    kb, tb = both(make((2, 3)))
    assert_close(kiln.cat([ka, kb]), torch.cat([ta, tb]))
    kc, tc = both(make((2, 0)))
    assert_close(kiln.cat([kc, kb], 1), torch.cat([tc, tb], 1))
    assert_close(kiln.cat([kc, kc], 1), torch.cat([tc, tc], 1))
    kd, td = both(make((1, 1, 3)))
    assert_close(kiln.cat([kd, kd, kd], 1), torch.cat([td, td, td], 1))
    assert_close(kiln.cat([kb]), torch.cat([tb]))


def test_cat_skips_legacy_empty_1d():
    e = kiln.empty(0, dtype=kiln.float64)
    te = torch.empty(0, dtype=torch.float64)
    kb, tb = both(make((2, 3), "float32"), dtype=kiln.float32)
    for dim in (0, 1, -1):
        assert_close(kiln.cat([e, kb, e], dim), torch.cat([te, tb, te], dim))
    assert_close(kiln.cat([e, kiln.empty(0)]), torch.cat([te, torch.empty(0)]))
    with pytest.raises(IndexError, match=r"\[cat\] dimension out of range"):
        kiln.cat([e, kb], 2)


def test_cat_errors_name_op_tensor_and_shapes():
    a, b = kiln.ones(2, 3), kiln.ones(2, 4)
    with pytest.raises(ValueError, match=r"\[cat\] expected a non-empty list"):
        kiln.cat([])
    with pytest.raises(ValueError, match=r"\[cat\] sizes of tensors must match except in "
                       r"dimension 0\. Expected size 3 but got size 4 for tensor number 1 .*"
                       r"\[2, 3\] and \[2, 4\]"):
        kiln.cat([a, b])
    with pytest.raises(ValueError, match=r"\[cat\] tensors must have the same number of "
                       r"dimensions: got 2 and 3 \(tensor 2"):
        kiln.cat([a, a, kiln.ones(2, 3, 1)])
    with pytest.raises(ValueError, match=r"\[cat\] zero-dimensional tensor \(at position 1\)"):
        kiln.cat([a, kiln.tensor(1.0)])
    with pytest.raises(IndexError, match=r"\[cat\] dimension out of range"):
        kiln.cat([a, a], 2)
    with pytest.raises(TypeError, match=r"\[cat\] expected a sequence of Tensors, but element 1"):
        kiln.cat([a, 3])
    with pytest.raises(TypeError, match=r"\[cat\] expected a sequence of Tensors"):
        kiln.cat(a)


def test_cat_grads_match_torch():
    check_grads(lambda a, b, c: kiln.cat([a, b, c], 1), lambda a, b, c: torch.cat([a, b, c], 1),
                make((2, 3)), make((2, 1), seed=2), make((2, 4), seed=3))
    # Mixed dtypes: each input's grad comes back in its own dtype.
    a = kiln.tensor(make((2, 2), "float32"), requires_grad=True)
    b = kiln.tensor(make((1, 2)), requires_grad=True)
    out = kiln.cat([a, b])
    assert out.dtype == kiln.float64
    out.backward(kiln.ones(3, 2, dtype=kiln.float64))
    assert a.grad.dtype == kiln.float32 and b.grad.dtype == kiln.float64
    assert a.grad.tolist() == [[1.0, 1.0]] * 2 and b.grad.tolist() == [[1.0, 1.0]]
    # A skipped legacy empty tensor gets an empty gradient.
    e = kiln.empty(0, dtype=kiln.float64).requires_grad_()
    kiln.cat([e, b], 1).sum().backward()
    assert e.grad.shape == (0,)


def test_cat_gradcheck_and_gradgradcheck():
    a, b, c = leaf((2, 3)), leaf((2, 2), 1), leaf((2, 1), 2)
    assert gradcheck(lambda x, y, z: kiln.cat([x, y, z], -1), (a, b, c))
    assert gradcheck(lambda x, y: kiln.cat([x.transpose(0, 1), y.transpose(0, 1)]), (a, b))
    assert gradgradcheck(lambda x, y, z: kiln.cat([x * x, y, z * z], 1), (a, b, c))
    assert gradgradcheck(lambda x, y: kiln.cat([x * y.sum(), y * y], 1), (a, b))


def test_cat_large_parallel():
    ka, ta = both(make((64, 700)))
    kb, tb = both(make((64, 300), seed=1))
    assert_close(kiln.cat([ka, kb], 1), torch.cat([ta, tb], 1))
    assert_close(kiln.cat([ka.transpose(0, 1), kb.transpose(0, 1)]), torch.cat([ta.t(), tb.t()]))


# ---- stack / hstack / vstack --------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
def test_stack_matches_torch(dtype, dim):
    ks, ts = zip(*[both(make((2, 3), dtype, i)) for i in range(3)])
    assert_close(kiln.stack(list(ks), dim), torch.stack(list(ts), dim))


def test_stack_promotes_noncontiguous_and_empty():
    ka, ta = both(make((3, 2), "float32"), dtype=kiln.float32)
    kb, tb = both(make((2, 3)))
    assert_close(kiln.stack([ka, kb.transpose(0, 1)], 1), torch.stack([ta, tb.t()], 1))
    ke, te = both(make((0, 2)))
    assert_close(kiln.stack([ke, ke], -1), torch.stack([te, te], -1))
    ks, ts = both(np.array(2.5))
    assert_close(kiln.stack([ks, ks]), torch.stack([ts, ts]))


def test_stack_errors_and_grads():
    with pytest.raises(ValueError, match=r"\[stack\] expects each tensor to be equal size, but "
                       r"got \[2, 3\] at entry 0 and \[2, 4\] at entry 1"):
        kiln.stack([kiln.ones(2, 3), kiln.ones(2, 4)])
    with pytest.raises(ValueError, match=r"\[stack\] expected a non-empty list"):
        kiln.stack([])
    with pytest.raises(IndexError, match=r"\[stack\] dimension out of range"):
        kiln.stack([kiln.ones(2, 3)], 3)
    check_grads(lambda a, b: kiln.stack([a, b], 1), lambda a, b: torch.stack([a, b], 1),
                make((2, 3)), make((2, 3), seed=1))
    a, b = leaf((2, 3)), leaf((2, 3), 1)
    assert gradcheck(lambda x, y: kiln.stack([x, y], -1), (a, b))
    assert gradgradcheck(lambda x, y: kiln.stack([x * y, y]), (a, b))


def test_hstack_vstack_match_torch():
    k1, t1 = both(make((3,)))
    k2, t2 = both(make((2,), seed=1))
    assert_close(kiln.hstack([k1, k2]), torch.hstack([t1, t2]))
    assert_close(kiln.vstack([k1, k1]), torch.vstack([t1, t1]))
    k3, t3 = both(make((2, 3), seed=2))
    k4, t4 = both(make((2, 1), seed=3))
    assert_close(kiln.hstack([k3, k4]), torch.hstack([t3, t4]))
    assert_close(kiln.vstack([k3, k1]), torch.vstack([t3, t1]))
    ks, ts = both(np.array(1.5))
    assert_close(kiln.hstack([ks, k1]), torch.hstack([ts, t1]))


# ---- repeat / tile ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reps", [(2, 3), (1, 1), (2, 1, 3), (0, 2), (3, 2, 1, 1)])
def test_repeat_matches_torch(dtype, reps):
    k, t = both(make((2, 3), dtype))
    assert_close(k.repeat(*reps), t.repeat(*reps))
    assert_close(k.repeat(reps), t.repeat(reps))
    assert_close(k.transpose(0, 1).repeat(*reps), t.t().repeat(*reps))


@pytest.mark.parametrize("dims", [(2,), (2, 2), (3, 1, 2), ()])
def test_tile_matches_torch(dims):
    k, t = both(make((2, 3)))
    assert_close(kiln.tile(k, dims), torch.tile(t, dims))
    if dims:
        assert_close(k.tile(*dims), t.tile(*dims))


def test_repeat_edge_cases_and_errors():
    k, t = both(np.array(3.0))
    assert_close(k.repeat(2, 2), t.repeat(2, 2))
    assert_close(k.repeat(), t.repeat([]))
    ke, te = both(make((0, 2)))
    assert_close(ke.repeat(3, 2), te.repeat(3, 2))
    with pytest.raises(ValueError, match=r"\[repeat\] number of dimensions of repeat dims \(1\) "
                       r"can not be smaller than number of dimensions of tensor \(2\)"):
        kiln.ones(2, 3).repeat(2)
    with pytest.raises(ValueError, match=r"\[repeat\] repeats must be non-negative"):
        kiln.ones(2, 3).repeat(2, -1)
    with pytest.raises(ValueError, match=r"\[tile\] repeats must be non-negative"):
        kiln.tile(kiln.ones(2), (-1,))


def test_repeat_tile_grads():
    check_grads(lambda a: a.repeat(2, 1, 3), lambda a: a.repeat(2, 1, 3), make((2, 3)))
    check_grads(lambda a: kiln.tile(a, (2,)), lambda a: torch.tile(a, (2,)), make((2, 3)))
    a = leaf((2, 3))
    assert gradcheck(lambda x: x.repeat(3, 2), (a,))
    assert gradcheck(lambda x: x.transpose(0, 1).repeat(2, 1, 2), (a,))
    assert gradgradcheck(lambda x: (x * x).repeat(2, 2), (a,))


# ---- flip ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dims", [(0,), (1,), (-1,), (0, 2), (0, 1, 2), ()])
def test_flip_matches_torch(dtype, dims):
    k, t = both(make((2, 3, 4), dtype))
    assert_close(kiln.flip(k, dims), torch.flip(t, dims))
    kv, tv = k.transpose(0, 2)._slice(0, 0, None, 2), t.transpose(0, 2)[::2]
    assert_close(kiln.flip(kv, dims), torch.flip(tv, dims))
    if dims:
        assert_close(k.transpose(0, 2).flip(*dims), t.transpose(0, 2).flip(*dims))


def test_flip_edge_cases_and_errors():
    k, t = both(np.array(1.5))
    assert_close(k.flip(0), t.flip(0))
    ke, te = both(make((0, 3)))
    assert_close(ke.flip(0, 1), te.flip(0, 1))
    k1, t1 = both(make((1, 5)))
    assert_close(k1.flip(0), t1.flip(0))
    kx, tx = both(make((3, 1)))
    assert_close(kx.expand(3, 4).flip(1, 0), tx.expand(3, 4).flip(1, 0))
    with pytest.raises(ValueError, match=r"\[flip\] dim 0 appears multiple times"):
        kiln.ones(2, 3).flip(0, -2)
    with pytest.raises(IndexError, match=r"\[flip\] dimension out of range"):
        kiln.ones(2, 3).flip(2)
    with pytest.raises(TypeError, match=r"\[flip\] missing dims"):
        kiln.ones(2, 3).flip()


def test_flip_grads():
    check_grads(lambda a: a.flip(0, 2), lambda a: a.flip(0, 2), make((2, 3, 4)))
    a = leaf((3, 4))
    assert gradcheck(lambda x: kiln.flip(x.transpose(0, 1), (0,)), (a,))
    assert gradgradcheck(lambda x: (x * x).flip(1), (a,))


# ---- roll ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shifts,dims", [(1, 0), (-1, 1), (7, -1), ((1, 2), (0, 1)),
                                         ((2, -3, 1), (0, 1, 2)), ((1, 1), (1, 1)), (0, 0),
                                         (3, None), (-13, None), ((5,), None)])
def test_roll_matches_torch(dtype, shifts, dims):
    k, t = both(make((2, 3, 4), dtype))
    assert_close(kiln.roll(k, shifts, dims), torch.roll(t, shifts, dims))
    assert_close(k.transpose(0, 2).roll(shifts, dims), t.transpose(0, 2).roll(shifts, dims))


def test_roll_edge_cases_and_errors():
    ke, te = both(make((0, 3)))
    assert_close(ke.roll(1, 0), te.roll(1, 0))
    assert_close(ke.roll(2), te.roll(2))
    k, t = both(np.array(2.0))
    assert_close(k.roll(1), t.roll(1))
    with pytest.raises(IndexError, match=r"\[roll\] dimension specified as 0 but tensor has no "
                       "dimensions"):
        k.roll(1, 0)
    with pytest.raises(ValueError, match=r"\[roll\] shifts and dimensions must align"):
        kiln.ones(2, 3).roll(1, (0, 1))
    with pytest.raises(ValueError, match=r"\[roll\] shifts and dimensions must align"):
        kiln.ones(2, 3).roll((1, 2))
    with pytest.raises(ValueError, match=r"\[roll\] `shifts` required"):
        kiln.ones(2, 3).roll(())
    with pytest.raises(IndexError, match=r"\[roll\] dimension out of range"):
        kiln.ones(2, 3).roll(1, 2)
    with pytest.raises(TypeError, match=r"\[roll\] expected"):
        kiln.ones(2, 3).roll(1.5)


def test_roll_grads():
    check_grads(lambda a: a.roll((1, -2), (0, 1)), lambda a: a.roll((1, -2), (0, 1)), make((3, 4)))
    check_grads(lambda a: a.roll(5), lambda a: a.roll(5), make((3, 4)))
    a = leaf((3, 4))
    assert gradcheck(lambda x: x.roll(2, 1), (a,))
    assert gradcheck(lambda x: x.transpose(0, 1).roll(-1), (a,))
    assert gradgradcheck(lambda x: (x * x).roll((1, 1), (0, 1)), (a,))


# ---- tril / triu --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("diagonal", [-2, -1, 0, 1, 3, 10])
@pytest.mark.parametrize("op", ["tril", "triu"])
def test_tril_triu_match_torch(dtype, diagonal, op):
    for shape in [(4, 4), (3, 5), (5, 3), (2, 3, 4), (1, 1), (0, 3), (2, 0, 3)]:
        k, t = both(make(shape, dtype))
        assert_close(getattr(kiln, op)(k, diagonal), getattr(torch, op)(t, diagonal))
        assert_close(getattr(k, op)(diagonal=diagonal), getattr(t, op)(diagonal=diagonal))
    k, t = both(make((3, 4, 5), dtype))
    kv, tv = k.transpose(0, 2)._slice(0, 0, None, 2), t.transpose(0, 2)[::2]
    assert_close(getattr(kv, op)(diagonal), getattr(tv, op)(diagonal))


@pytest.mark.parametrize("op", ["tril_", "triu_"])
def test_tril_triu_inplace(op):
    k, t = both(make((3, 4)))
    r = getattr(k, op)(1)
    getattr(t, op)(1)
    assert r is k
    assert_close(k, t)
    k, t = both(make((4, 3)))
    kv, tv = k.transpose(0, 1), t.t()
    getattr(kv, op)(-1)
    getattr(tv, op)(-1)
    assert_close(k, t)
    # Under autograd: in place on a non-leaf works, on a leaf that requires grad it refuses.
    a, ta = both(make((3, 3)), requires_grad=True)
    y, ty = a * 2, ta * 2
    getattr(y, op)()
    getattr(ty, op)()
    y.sum().backward()
    ty.sum().backward()
    assert_close(a.grad, ta.grad)
    with pytest.raises(RuntimeError, match=rf"\[{op}\] a leaf Variable"):
        getattr(leaf((2, 2)), op)()


def test_tril_triu_errors_and_grads():
    for op in ("tril", "triu", "tril_", "triu_"):
        with pytest.raises(ValueError, match=rf"\[{op}\] input tensor must have at least 2 "
                           "dimensions"):
            getattr(kiln.ones(3), op)()
    check_grads(lambda a: a.tril(-1), lambda a: a.tril(-1), make((2, 3, 4)))
    check_grads(lambda a: a.triu(1), lambda a: a.triu(1), make((4, 3)))
    a = leaf((3, 4))
    assert gradcheck(lambda x: x.tril(), (a,))
    assert gradcheck(lambda x: x.transpose(0, 1).triu(-1), (a,))
    assert gradgradcheck(lambda x: (x * x).triu(), (a,))


def test_tril_large_parallel():
    k, t = both(make((8, 130, 150)))
    assert_close(k.tril(3), t.tril(3))
    assert_close(k.transpose(1, 2).triu(-5), t.transpose(1, 2).triu(-5))
