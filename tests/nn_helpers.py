"""Shared helpers for test_norm.py, test_embedding.py and test_loss_kernels.py."""

import numpy as np

import kiln
from compare import assert_close, both, require_torch


def compare_fn(kfn, tfn, arrays, dtype="float64", grad=None, seed=1, rtol=None):
    """Runs kfn/tfn on the same data; compares outputs and the gradients of every array
    whose `grad` flag is set (None arrays pass through as None). Returns (kiln, torch)
    input lists."""
    torch = require_torch()
    grad = grad if grad is not None else [True] * len(arrays)
    ks, ts = [], []
    for a, g in zip(arrays, grad):
        if a is None:
            ks.append(None)
            ts.append(None)
            continue
        k, t = both(a, dtype=getattr(kiln, dtype) if np.asarray(a).dtype.kind == "f" else None)
        if g:
            k.requires_grad_(True)
            t.requires_grad_(True)
        ks.append(k)
        ts.append(t)
    ko, to = kfn(*ks), tfn(*ts)
    assert_close(ko, to, rtol=rtol, atol=rtol)
    if any(g and a is not None for a, g in zip(arrays, grad)):
        up = np.random.default_rng(seed).standard_normal(tuple(to.shape))
        ko.backward(kiln.tensor(up).to(ko.dtype))
        to.backward(torch.tensor(up).to(to.dtype))
        for k, t, g in zip(ks, ts, grad):
            if g and k is not None:
                assert_close(k.grad, t.grad, rtol=rtol, atol=rtol)
    return ks, ts


def leaf(arr):
    return kiln.tensor(np.asarray(arr, dtype=np.float64), requires_grad=True)
