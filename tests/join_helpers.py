"""Shared helpers for test_join.py and test_gather.py."""

import numpy as np

import kiln
from compare import assert_close, both, require_torch

DTYPES = ["float32", "float64", "int64", "bool"]


def make(shape, dtype="float64", seed=0):
    """Random data of a dtype as a NumPy array (ints in [-5, 5], bools half true)."""
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.random(shape) > 0.5
    if dtype == "int64":
        return rng.integers(-5, 6, shape)
    return rng.standard_normal(shape).astype(dtype)


def leaf(shape, seed=0):
    """A float64 kiln leaf that requires grad (for gradcheck)."""
    return kiln.tensor(make(shape, seed=seed), requires_grad=True)


def check_grads(kfn, tfn, *arrays, seed=1):
    """Forward values and every input's gradient (random upstream grad) match torch."""
    torch = require_torch()
    pairs = [both(a, requires_grad=True) for a in arrays]
    ks, ts = [p[0] for p in pairs], [p[1] for p in pairs]
    ko, to = kfn(*ks), tfn(*ts)
    assert_close(ko, to)
    g = np.random.default_rng(seed).standard_normal(tuple(to.shape))
    ko.backward(kiln.tensor(g).to(ko.dtype))
    to.backward(torch.tensor(g).to(to.dtype))
    for k, t in zip(ks, ts):
        assert_close(k.grad, t.grad)

