"""Fused loss kernels: cross_entropy (class indices and probabilities) and nll_loss."""

import numpy as np
import pytest

import kiln
from compare import assert_close, both, require_torch
from nn_helpers import compare_fn, leaf

torch = require_torch()
F = torch.nn.functional
gradcheck = kiln.autograd.gradcheck
gradgradcheck = kiln.autograd.gradgradcheck
DTYPES = ["float32", "float64"]
REDUCTIONS = ["mean", "sum", "none"]


def rnd(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def classes(shape, c, seed=0, ignore=None):
    t = np.random.default_rng(seed).integers(0, c, shape)
    if ignore is not None and t.size:
        t.reshape(-1)[::3] = ignore
    return t


def probs(shape, seed=0):
    e = np.exp(rnd(*shape, seed=seed))
    return e / e.sum(axis=1 if len(shape) > 1 else 0, keepdims=True)


SHAPES = [(6, 5), (5,), (3, 4, 2), (2, 3, 2, 2)]


def target_shape(shape):
    return shape[:1] + shape[2:] if len(shape) > 1 else ()


# ---- cross_entropy ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.25])
def test_cross_entropy_indices_matches_torch(dtype, shape, reduction, weighted, smoothing):
    c = shape[0] if len(shape) == 1 else shape[1]
    t = classes(target_shape(shape), c, ignore=-100 if len(shape) > 1 else None)
    kt, tt = kiln.tensor(t), torch.tensor(t)
    w = np.abs(rnd(c, seed=2)) + 0.1 if weighted else None
    compare_fn(lambda x, w: kiln.cross_entropy(x, kt, w, reduction=reduction,
                                               label_smoothing=smoothing),
               lambda x, w: F.cross_entropy(x, tt, w, reduction=reduction,
                                            label_smoothing=smoothing),
               [rnd(*shape) * 3, w], dtype, grad=[True, False])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_cross_entropy_probabilities_matches_torch(dtype, shape, reduction, weighted, smoothing):
    c = shape[0] if len(shape) == 1 else shape[1]
    w = np.abs(rnd(c, seed=2)) + 0.1 if weighted else None
    # Gradients flow into the target too.
    compare_fn(lambda x, y, w: kiln.cross_entropy(x, y, w, reduction=reduction,
                                                  label_smoothing=smoothing),
               lambda x, y, w: F.cross_entropy(x, y, w, reduction=reduction,
                                               label_smoothing=smoothing),
               [rnd(*shape), probs(shape, seed=1), w], dtype, grad=[True, True, False])


def test_cross_entropy_ignore_index_custom_and_all_ignored():
    t = np.array([1, 3, 3, 0])
    compare_fn(lambda x: kiln.cross_entropy(x, kiln.tensor(t), ignore_index=3),
               lambda x: F.cross_entropy(x, torch.tensor(t), ignore_index=3), [rnd(4, 5)])
    t = np.full(4, -100)
    compare_fn(lambda x: kiln.cross_entropy(x, kiln.tensor(t)),
               lambda x: F.cross_entropy(x, torch.tensor(t)), [rnd(4, 5)])  # nan, zero grads


def test_cross_entropy_stability_noncontiguous_and_empty():
    x = rnd(4, 6) * 1000  # naive exp would overflow
    t = classes((4,), 6)
    k, tx = both(x)
    assert_close(kiln.cross_entropy(k, kiln.tensor(t), reduction="none"),
                 F.cross_entropy(tx, torch.tensor(t), reduction="none"))
    k, tx = both(rnd(6, 4))
    assert_close(kiln.cross_entropy(k.transpose(0, 1), kiln.tensor(t)),
                 F.cross_entropy(tx.t(), torch.tensor(t)))
    k, tx = both(np.zeros((0, 3)))
    e = np.zeros(0, dtype=np.int64)
    assert_close(kiln.cross_entropy(k, kiln.tensor(e)), F.cross_entropy(tx, torch.tensor(e)))
    assert_close(kiln.cross_entropy(k, kiln.tensor(e), reduction="sum"),
                 F.cross_entropy(tx, torch.tensor(e), reduction="sum"))


def test_cross_entropy_float16():
    for dt in (kiln.float16, kiln.bfloat16):
        k, tx = both(rnd(4, 6), dtype=dt)
        t = classes((4,), 6)
        assert_close(kiln.cross_entropy(k, kiln.tensor(t)), F.cross_entropy(tx, torch.tensor(t)),
                     rtol=2e-2)


def test_cross_entropy_gradcheck_and_gradgradcheck():
    t = kiln.tensor(classes((3, 2), 4, ignore=-100))
    w = kiln.tensor(np.abs(rnd(4, seed=3)) + 0.1)
    for reduction in REDUCTIONS:
        def f(x, reduction=reduction):
            return kiln.cross_entropy(x, t, w, reduction=reduction, label_smoothing=0.1)
        assert gradcheck(f, (leaf(rnd(3, 4, 2)),))
        assert gradgradcheck(f, (leaf(rnd(3, 4, 2)),))

    def fp(x, y):
        return kiln.cross_entropy(x, y, w, reduction="none", label_smoothing=0.2)
    assert gradcheck(fp, (leaf(rnd(3, 4)), leaf(probs((3, 4)))))
    assert gradgradcheck(fp, (leaf(rnd(3, 4)), leaf(probs((3, 4)))))


@pytest.mark.parametrize("prob", [False, True])
def test_cross_entropy_double_backward_matches_torch(prob):
    x = rnd(4, 5)
    y = probs((4, 5), seed=1) if prob else np.array([1, -100, 4, 0])
    w = np.abs(rnd(5, seed=2)) + 0.1
    kx, tx = both(x, requires_grad=True)
    ky, ty = both(y, requires_grad=prob)
    kw, tw = both(w)
    kl = kiln.cross_entropy(kx, ky, kw, label_smoothing=0.1)
    tl = F.cross_entropy(tx, ty, tw, label_smoothing=0.1)
    kins, tins = ([kx, ky], [tx, ty]) if prob else ([kx], [tx])
    kg = kiln.autograd.grad(kl, kins, create_graph=True)
    tg = torch.autograd.grad(tl, tins, create_graph=True)
    assert_close(list(kg), list(tg))
    sum(((g * g).sum() for g in kg), kiln.zeros(()).double()).backward()
    sum(((g * g).sum() for g in tg), torch.zeros(()).double()).backward()
    for k, t in zip(kins, tins):
        assert_close(k.grad, t.grad)


def test_cross_entropy_errors():
    x = kiln.tensor(rnd(8, 10))
    with pytest.raises(ValueError, match=r"\[cross_entropy\] expected target of shape \[8\] for "
                                         r"input \[8, 10\], got \[8, 1\]"):
        kiln.cross_entropy(x, kiln.zeros(8, 1, dtype=kiln.int64))
    with pytest.raises(IndexError, match=r"\[cross_entropy\] target 10 is out of bounds for 10 "
                                         r"classes"):
        kiln.cross_entropy(x, kiln.tensor([0] * 7 + [10]))
    with pytest.raises(IndexError, match=r"\[cross_entropy\] target -3"):
        kiln.cross_entropy(x, kiln.tensor([0] * 7 + [-3]))
    with pytest.raises(TypeError, match=r"\[cross_entropy\] expected target of dtype int64"):
        kiln.cross_entropy(x, kiln.zeros(8))
    with pytest.raises(ValueError, match=r"\[cross_entropy\] expected weight of shape \[10\]"):
        kiln.cross_entropy(x, kiln.zeros(8, dtype=kiln.int64), kiln.ones(3).double())
    with pytest.raises(ValueError, match=r"\[cross_entropy\] expected reduction"):
        kiln.cross_entropy(x, kiln.zeros(8, dtype=kiln.int64), reduction="avg")
    with pytest.raises(ValueError, match=r"\[cross_entropy\] ignore_index is not supported"):
        kiln.cross_entropy(x, x, ignore_index=1)
    with pytest.raises(ValueError, match=r"\[cross_entropy\] expected label_smoothing"):
        kiln.cross_entropy(x, x, label_smoothing=1.5)
    with pytest.raises(TypeError, match=r"\[cross_entropy\]"):
        kiln.cross_entropy(kiln.zeros(8, 10, dtype=kiln.int64), kiln.zeros(8, dtype=kiln.int64))


# ---- nll_loss ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_nll_loss_matches_torch(dtype, shape, reduction, weighted):
    c = shape[0] if len(shape) == 1 else shape[1]
    t = classes(target_shape(shape), c, ignore=-100 if len(shape) > 1 else None)
    kt, tt = kiln.tensor(t), torch.tensor(t)
    w = np.abs(rnd(c, seed=2)) + 0.1 if weighted else None
    compare_fn(lambda x, w: kiln.nll_loss(x, kt, w, reduction=reduction),
               lambda x, w: F.nll_loss(x, tt, w, reduction=reduction),
               [rnd(*shape), w], dtype, grad=[True, False])


def test_nll_loss_gradcheck_double_backward_and_errors():
    t = kiln.tensor([1, 0, 2, 1])
    w = kiln.tensor([0.5, 2.0, 1.5]).double()
    for reduction in REDUCTIONS:
        def f(x, reduction=reduction):
            return kiln.nll_loss(x, t, w, ignore_index=0, reduction=reduction)
        assert gradcheck(f, (leaf(rnd(4, 3)),))
        assert gradgradcheck(f, (leaf(rnd(4, 3)),))
    with pytest.raises(ValueError, match=r"\[nll_loss\] expected target of shape \[4\] for "
                                         r"input \[4, 3\], got \[3\]"):
        kiln.nll_loss(kiln.tensor(rnd(4, 3)), kiln.tensor([0, 1, 2]))
    with pytest.raises(IndexError, match=r"\[nll_loss\] target 3 is out of bounds for 3 classes"):
        kiln.nll_loss(kiln.tensor(rnd(4, 3)), kiln.tensor([0, 1, 2, 3]))
    with pytest.raises(TypeError, match=r"\[nll_loss\] expected target of dtype int64"):
        kiln.nll_loss(kiln.tensor(rnd(4, 3)), kiln.tensor(rnd(4)))
    with pytest.raises(NotImplementedError, match=r"\[nll_loss\] the gradient with respect to "
                                                  r"weight"):
        kiln.nll_loss(kiln.tensor(rnd(4, 3)), t, leaf(np.ones(3)))
