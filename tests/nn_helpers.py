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
"""Differential-test helpers for kiln.nn against torch.nn: run the same computation on
both, compare outputs and gradients of inputs and parameters."""
from compare import assert_close, require_torch
TOL = {"float64": {"rtol": 1e-7, "atol": 1e-9}, "float32": {"rtol": 1e-4, "atol": 1e-5}}
def _pair(arr, dtype, grad):
    arr = np.asarray(arr)
    if arr.dtype.kind == "f":
        arr = arr.astype(dtype)
    k, t = kiln.tensor(arr.copy()), torch.tensor(arr.copy())
    if grad and arr.dtype.kind == "f":
        k.requires_grad_(True)
        t.requires_grad_(True)
    return k, t
def _outputs(out):
    return list(out) if isinstance(out, tuple) else [out]
def compare(kfn, tfn, arrays, dtype="float64", grad=True, kmod=None, tmod=None, seed=1):
    """Calls kfn(*kiln_inputs) and tfn(*torch_inputs); compares outputs, then backprops the same
    random cotangent through both and compares input (and module parameter) gradients."""
    tol = TOL[dtype]
    pairs = [_pair(a, dtype, grad) for a in arrays]
    ks, ts = [p[0] for p in pairs], [p[1] for p in pairs]
    kout, tout = _outputs(kfn(*ks)), _outputs(tfn(*ts))
    assert len(kout) == len(tout)
    for a, b in zip(kout, tout):
        assert_close(a, b, **tol)
    if not grad:
        return kout
    ko, to = kout[0], tout[0]
    rng = np.random.default_rng(seed)
    g = rng.standard_normal(tuple(to.shape)).astype(dtype)
    (ko * kiln.tensor(g)).sum().backward()
    (to * require_torch().tensor(g)).sum().backward()
    for k, t in zip(ks, ts):
        if t.requires_grad:
            assert_close(k.grad, t.grad, **tol)
    if kmod is not None:
        kparams = dict(kmod.named_parameters())
        for name, tp in tmod.named_parameters():
            assert_close(kparams[name].grad, tp.grad, **tol)
    return kout
def copy_module(kmod, tmod, dtype="float64"):
    """Gives kmod tmod's parameters and buffers (both cast to dtype)."""
    tmod.to(getattr(torch, dtype))
    state = {k: kiln.tensor(v.detach().numpy().copy()) for k, v in tmod.state_dict().items()}
    kmod.to(getattr(kiln, dtype))
    kmod.load_state_dict(state)
    return kmod, tmod
def compare_module(kmod, tmod, arrays, dtype="float64", grad=True):
    copy_module(kmod, tmod, dtype)
    return compare(kmod, tmod, arrays, dtype, grad, kmod, tmod)
