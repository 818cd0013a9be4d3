"""Embedding lookups and dropout (the index- and mask-driven nn ops)."""

import numpy as np
import pytest

import kiln
from compare import assert_close, both, require_torch
from nn_helpers import compare_fn, leaf

torch = require_torch()
F = torch.nn.functional
gradcheck = kiln.autograd.gradcheck
gradgradcheck = kiln.autograd.gradgradcheck


def rnd(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def square(x):
    return x * x  # (no pow on main yet)


# ---- embedding ------------------------------------------------------------------------

IDX = np.array([[0, 2, 2, 5], [5, 1, 0, 2]])  # repeated indices


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("padding_idx", [None, 2, -1, 0])
@pytest.mark.parametrize("idx", [IDX, IDX[0], np.array(3), np.zeros((0, 2), dtype=np.int64)])
def test_embedding_matches_torch(dtype, padding_idx, idx):
    ki, ti = kiln.tensor(idx), torch.tensor(idx)
    compare_fn(lambda w: kiln.embedding(ki, w, padding_idx=padding_idx),
               lambda w: F.embedding(ti, w, padding_idx=padding_idx), [rnd(6, 3)], dtype)


def test_embedding_int32_noncontiguous_and_gradcheck():
    ki, ti = kiln.tensor(IDX.astype(np.int32)), torch.tensor(IDX.astype(np.int32))
    kw, tw = both(rnd(3, 6))
    assert_close(kiln.embedding(ki.transpose(0, 1), kw.transpose(0, 1)),
                 F.embedding(ti.t(), tw.t()))
    w = leaf(rnd(6, 3))
    # (padding_idx deliberately breaks the finite-difference gradient; torch is the reference
    # for it in the other tests.)
    assert gradcheck(lambda w: kiln.embedding(kiln.tensor(IDX), w), (w,))
    assert gradgradcheck(lambda w: square(kiln.embedding(kiln.tensor(IDX), w)), (w,))


def test_embedding_double_backward_matches_torch():
    kw, tw = both(rnd(6, 3), requires_grad=True)
    ki, ti = kiln.tensor(IDX), torch.tensor(IDX)
    kg = square(kiln.embedding(ki, kw, padding_idx=5)).sum()
    tg = (F.embedding(ti, tw, padding_idx=5) ** 2).sum()
    (kd,) = kiln.autograd.grad(kg, [kw], create_graph=True)
    (td,) = torch.autograd.grad(tg, [tw], create_graph=True)
    assert_close(kd, td)
    (kd * kd).sum().backward()
    (td * td).sum().backward()
    assert_close(kw.grad, tw.grad)


def test_embedding_errors():
    w = kiln.tensor(rnd(4, 3))
    with pytest.raises(IndexError, match=r"\[embedding\] index 4 is out of range for weight "
                                         r"with 4 rows"):
        kiln.embedding(kiln.tensor([1, 4]), w)
    with pytest.raises(IndexError, match=r"\[embedding\] index -1"):
        kiln.embedding(kiln.tensor([-1]), w)
    with pytest.raises(TypeError, match=r"\[embedding\] expected input of dtype int64"):
        kiln.embedding(kiln.tensor([1.0]), w)
    with pytest.raises(ValueError, match=r"\[embedding\] expected weight of shape"):
        kiln.embedding(kiln.tensor([1]), kiln.tensor(rnd(4)))
    with pytest.raises(ValueError, match=r"\[embedding\] padding_idx 4 is out of range"):
        kiln.embedding(kiln.tensor([1]), w, padding_idx=4)


# ---- dropout --------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
@pytest.mark.parametrize("dtype", [kiln.float32, kiln.float64])
def test_dropout_statistics_and_scaling(p, dtype):
    x = kiln.ones(200, 500, dtype=dtype)
    y = kiln.dropout(x, p).numpy()
    zero = y == 0
    assert abs(zero.mean() - p) < 0.01
    np.testing.assert_allclose(y[~zero], 1 / (1 - p), rtol=1e-6)
    assert y.dtype == (np.float32 if dtype == kiln.float32 else np.float64)


def test_dropout_edge_cases_and_eval():
    x = kiln.tensor(rnd(4, 5))
    assert kiln.dropout(x, 0.5, training=False) is x
    assert kiln.dropout(x, 0.0) is x
    assert kiln.dropout2d(x, 0.3, training=False) is x
    assert np.all(kiln.dropout(x, 1.0).numpy() == 0)
    xg = leaf(rnd(4, 5))
    kiln.dropout(xg, 1.0).sum().backward()
    assert np.all(xg.grad.numpy() == 0)
    with pytest.raises(ValueError, match=r"\[dropout\] expected p in \[0, 1\], got 1.5"):
        kiln.dropout(x, 1.5)
    with pytest.raises(ValueError, match=r"\[dropout2d\]"):
        kiln.dropout2d(x, -0.1)
    with pytest.raises(ValueError, match=r"\[dropout2d\] expected input of shape"):
        kiln.dropout2d(kiln.tensor(rnd(4)))
    with pytest.raises(TypeError, match=r"\[dropout\]"):
        kiln.dropout(kiln.tensor([1, 2]))


def test_dropout_reproducible_with_manual_seed_and_gradient():
    x = leaf(rnd(50, 40))
    kiln.manual_seed(123)
    a = kiln.dropout(x, 0.4)
    kiln.manual_seed(123)
    b = kiln.dropout(x, 0.4)
    c = kiln.dropout(x, 0.4)
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    assert not np.array_equal(b.detach().numpy(), c.detach().numpy())
    g = rnd(50, 40, seed=3)
    a.backward(kiln.tensor(g))
    # The gradient is the same mask and scale applied to the upstream gradient.
    mask = a.detach().numpy() / x.detach().numpy()
    np.testing.assert_allclose(x.grad.numpy(), g * mask, rtol=1e-12)

    def seeded_dropout(x):  # the same mask on every call, as finite differences need
        kiln.manual_seed(5)
        return kiln.dropout(x, 0.5)

    assert gradcheck(seeded_dropout, (leaf(rnd(3, 4)),))
    assert gradgradcheck(lambda x: square(seeded_dropout(x)), (leaf(rnd(3, 4)),))


def test_dropout2d_zeroes_whole_channels():
    for shape in [(8, 16, 5, 5), (8, 16, 7), (30, 20)]:
        x = kiln.ones(*shape, dtype=kiln.float64)
        y = kiln.dropout2d(x, 0.5).numpy().reshape(shape[0], shape[1], -1)
        per_channel = y[:, :, :1]
        assert np.all(y == per_channel)  # one decision per (n, c)
        assert set(np.unique(y)) <= {0.0, 2.0}
        assert 0.3 < (per_channel == 0).mean() < 0.7


def test_dropout_inplace():
    x = kiln.ones(10, 10)
    y = kiln.dropout(x, 0.5, inplace=True)
    assert y is x
    assert set(np.unique(x.numpy())) <= {0.0, 2.0}
