"""Fused normalization ops: layer_norm, rms_norm, group_norm, batch_norm."""

import numpy as np
import pytest

import kiln
from compare import assert_close, both, require_torch
from nn_helpers import compare_fn, leaf

torch = require_torch()
F = torch.nn.functional
gradcheck = kiln.autograd.gradcheck
DTYPES = ["float32", "float64"]


def rnd(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ---- layer_norm ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,ns", [((4, 5), (5,)), ((2, 3, 4), (3, 4)), ((6,), (6,)),
                                      ((2, 3, 1), (1,)), ((3, 2, 4), (2, 4))])
@pytest.mark.parametrize("affine", ["both", "weight", "bias", "none"])
def test_layer_norm_matches_torch(dtype, shape, ns, affine):
    w = rnd(*ns, seed=1) if affine in ("both", "weight") else None
    b = rnd(*ns, seed=2) if affine in ("both", "bias") else None
    compare_fn(lambda x, w, b: kiln.layer_norm(x, ns, w, b, eps=1e-3),
               lambda x, w, b: F.layer_norm(x, ns, w, b, eps=1e-3), [rnd(*shape), w, b], dtype)


def test_layer_norm_int_shape_noncontiguous_and_empty():
    x = rnd(5, 4)
    k, t = both(x)
    assert_close(kiln.layer_norm(k.transpose(0, 1), 5), F.layer_norm(t.t(), (5,)))
    assert_close(kiln.layer_norm(k._slice(0, 0, None, 2), [4]), F.layer_norm(t[::2], [4]))
    k0, t0 = both(np.zeros((0, 3)))
    assert_close(kiln.layer_norm(k0, 3), F.layer_norm(t0, (3,)))


def test_layer_norm_gradcheck():
    x, w, b = leaf(rnd(3, 4)), leaf(rnd(4, seed=1)), leaf(rnd(4, seed=2))
    assert gradcheck(lambda x, w, b: kiln.layer_norm(x, 4, w, b), (x, w, b))
    assert gradcheck(lambda x: kiln.layer_norm(x, (3, 4)), (x,))


def test_layer_norm_float16_bfloat16():
    for dt in ("float16", "bfloat16"):
        k, t = both(rnd(4, 8), dtype=getattr(kiln, dt))
        assert_close(kiln.layer_norm(k, 8), F.layer_norm(t, (8,)), rtol=2e-2)


def test_layer_norm_errors():
    x = kiln.tensor(rnd(4, 5))
    with pytest.raises(ValueError, match=r"\[layer_norm\].*\[4, 5\]"):
        kiln.layer_norm(x, 4)
    with pytest.raises(ValueError, match=r"\[layer_norm\] expected weight of shape \[5\]"):
        kiln.layer_norm(x, 5, kiln.tensor(rnd(4)))
    with pytest.raises(TypeError, match=r"\[layer_norm\]"):
        kiln.layer_norm(x, 5, kiln.tensor(rnd(5)).float())
    with pytest.raises(TypeError, match=r"\[layer_norm\]"):
        kiln.layer_norm(kiln.tensor(np.ones((2, 3), dtype=np.int64)), 3)
    with pytest.raises(ValueError, match=r"\[layer_norm\]"):
        kiln.layer_norm(x, ())


# name: (kiln fn, torch fn, input shape, weight/bias shape)
NORMS = {
    "layer_norm": (lambda x, w, b: kiln.layer_norm(x, [2, 3], w, b),
                   lambda x, w, b: F.layer_norm(x, [2, 3], w, b), (3, 2, 3), (2, 3)),
    "rms_norm": (lambda x, w, b: kiln.rms_norm(x, [3], w, eps=1e-3) + b,
                 lambda x, w, b: F.rms_norm(x, [3], w, eps=1e-3) + b, (4, 3), (3,)),
    "group_norm": (lambda x, w, b: kiln.group_norm(x, 2, w, b),
                   lambda x, w, b: F.group_norm(x, 2, w, b), (2, 4, 3), (4,)),
    "batch_norm": (lambda x, w, b: kiln.batch_norm(x, None, None, w, b, True),
                   lambda x, w, b: F.batch_norm(x, None, None, w, b, True), (3, 2, 2), (2,)),
}


@pytest.mark.parametrize("name", sorted(NORMS))
def test_norm_double_backward_matches_torch_and_gradgradcheck(name):
    kfn, tfn, xshape, pshape = NORMS[name]
    arrays = [rnd(*xshape), rnd(*pshape, seed=1), rnd(*pshape, seed=2)]
    (kx, tx), (kw, tw), (kb, tb) = [both(a, requires_grad=True) for a in arrays]
    up = rnd(*xshape, seed=5)
    kg = kiln.autograd.grad((kfn(kx, kw, kb) * kiln.tensor(up)).sum(), [kx, kw, kb],
                            create_graph=True)
    tg = torch.autograd.grad((tfn(tx, tw, tb) * torch.tensor(up)).sum(), [tx, tw, tb],
                             create_graph=True)
    assert_close(list(kg), list(tg))
    ((kg[0] * kg[0]).sum() + (kg[1] * kg[1]).sum()).backward()
    ((tg[0] * tg[0]).sum() + (tg[1] * tg[1]).sum()).backward()
    for k, t in [(kx, tx), (kw, tw)]:
        assert_close(k.grad, t.grad, rtol=1e-8, atol=1e-8)
    assert kiln.autograd.gradgradcheck(kfn, [leaf(a) for a in arrays])


def test_batch_norm_eval_double_backward():
    rm, rv = kiln.tensor(rnd(2, seed=3)), kiln.tensor(np.abs(rnd(2, seed=4)) + 1)
    args = [leaf(rnd(3, 2, 2)), leaf(rnd(2, seed=1)), leaf(rnd(2, seed=2))]
    assert kiln.autograd.gradgradcheck(
        lambda x, w, b: kiln.batch_norm(x, rm, rv, w, b, False), args)


# ---- rms_norm -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,ns", [((4, 5), (5,)), ((2, 3, 4), (3, 4))])
@pytest.mark.parametrize("weight", [True, False])
@pytest.mark.parametrize("eps", [None, 1e-2])
def test_rms_norm_matches_torch(dtype, shape, ns, weight, eps):
    w = rnd(*ns, seed=1) if weight else None
    compare_fn(lambda x, w: kiln.rms_norm(x, ns, w, eps=eps),
               lambda x, w: F.rms_norm(x, ns, w, eps=eps), [rnd(*shape), w], dtype)


def test_rms_norm_gradcheck_and_errors():
    x, w = leaf(rnd(3, 4)), leaf(rnd(4, seed=1))
    assert gradcheck(lambda x, w: kiln.rms_norm(x, [4], w), (x, w))
    with pytest.raises(ValueError, match=r"\[rms_norm\]"):
        kiln.rms_norm(x, [3])


# ---- group_norm -----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,groups", [((2, 6, 5), 3), ((2, 6, 5), 1), ((2, 6, 5), 6),
                                          ((3, 4, 2, 3), 2), ((2, 4), 2)])
@pytest.mark.parametrize("affine", [True, False])
def test_group_norm_matches_torch(dtype, shape, groups, affine):
    c = shape[1]
    w, b = (rnd(c, seed=1), rnd(c, seed=2)) if affine else (None, None)
    compare_fn(lambda x, w, b: kiln.group_norm(x, groups, w, b),
               lambda x, w, b: F.group_norm(x, groups, w, b), [rnd(*shape), w, b], dtype)


def test_group_norm_gradcheck_and_errors():
    x, w, b = leaf(rnd(2, 4, 3)), leaf(rnd(4, seed=1)), leaf(rnd(4, seed=2))
    assert gradcheck(lambda x, w, b: kiln.group_norm(x, 2, w, b), (x, w, b))
    with pytest.raises(ValueError, match=r"\[group_norm\].*num_groups=3"):
        kiln.group_norm(x, 3)
    with pytest.raises(ValueError, match=r"\[group_norm\] expected weight of shape \[4\]"):
        kiln.group_norm(x, 2, kiln.tensor(rnd(3)))
    with pytest.raises(ValueError, match=r"\[group_norm\]"):
        kiln.group_norm(kiln.tensor(rnd(4)), 2)


# ---- batch_norm -----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 5), (2, 3, 2, 4)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_matches_torch(dtype, shape, training, affine):
    c = shape[1]
    w, b = (rnd(c, seed=1), rnd(c, seed=2)) if affine else (None, None)
    rm, rv = rnd(c, seed=3), np.abs(rnd(c, seed=4)) + 0.5
    krm, trm = both(rm, dtype=getattr(kiln, dtype))
    krv, trv = both(rv, dtype=getattr(kiln, dtype))
    for _ in range(2):  # the second step sees updated running stats
        compare_fn(lambda x, w, b: kiln.batch_norm(x, krm, krv, w, b, training, 0.2, 1e-4),
                   lambda x, w, b: F.batch_norm(x, trm, trv, w, b, training, 0.2, 1e-4),
                   [rnd(*shape), w, b], dtype)
        assert_close(krm, trm)
        assert_close(krv, trv)


def test_batch_norm_without_running_stats_and_gradcheck():
    compare_fn(lambda x: kiln.batch_norm(x, None, None, training=True),
               lambda x: F.batch_norm(x, None, None, training=True), [rnd(5, 2, 3)])
    x, w, b = leaf(rnd(3, 2, 2)), leaf(rnd(2, seed=1)), leaf(rnd(2, seed=2))
    assert gradcheck(lambda x, w, b: kiln.batch_norm(x, None, None, w, b, True), (x, w, b))
    rm, rv = kiln.zeros(2).double(), kiln.ones(2).double()
    assert gradcheck(lambda x, w, b: kiln.batch_norm(x, rm, rv, w, b, False), (x, w, b))


def test_batch_norm_errors():
    x = kiln.tensor(rnd(4, 3))
    with pytest.raises(ValueError, match=r"\[batch_norm\] running_mean and running_var must"):
        kiln.batch_norm(x, None, None, training=False)
    with pytest.raises(ValueError, match=r"\[batch_norm\] expected more than 1 value"):
        kiln.batch_norm(kiln.tensor(rnd(1, 3)), None, None, training=True)
    with pytest.raises(ValueError, match=r"\[batch_norm\] expected running stats of shape \[3\]"):
        kiln.batch_norm(x, kiln.zeros(4).double(), kiln.ones(4).double())
    with pytest.raises(ValueError, match=r"\[batch_norm\] expected input of shape \(N, C, \*\)"):
        kiln.batch_norm(kiln.tensor(rnd(3)), None, None, training=True)


def test_norms_with_empty_dims_match_torch():
    k, t = both(np.zeros((2, 4, 0)))
    assert_close(kiln.group_norm(k, 2), F.group_norm(t, 2))
    krm, trm = both(np.zeros(4))
    krv, trv = both(np.ones(4))
    assert_close(kiln.batch_norm(k, krm, krv), F.batch_norm(t, trm, trv))
    k, t = both(np.zeros((0, 4, 3)))
    assert_close(kiln.group_norm(k, 2), F.group_norm(t, 2))
    assert_close(kiln.layer_norm(k, [4, 3]), F.layer_norm(t, [4, 3]))
