"""Differential-test helpers for kiln.nn modules and functionals against torch.nn: run the
same computation on both, compare outputs and gradients of inputs and parameters."""

import kiln
import numpy as np
from compare import assert_close, require_torch

TOL = {"float64": {"rtol": 1e-7, "atol": 1e-9}, "float32": {"rtol": 1e-4, "atol": 1e-5}}


def _pair(arr, dtype, grad):
    torch = require_torch()
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
    torch = require_torch()
    tmod.to(getattr(torch, dtype))
    state = {k: kiln.tensor(v.detach().numpy().copy()) for k, v in tmod.state_dict().items()}
    kmod.to(getattr(kiln, dtype))
    kmod.load_state_dict(state)
    return kmod, tmod


def compare_module(kmod, tmod, arrays, dtype="float64", grad=True):
    copy_module(kmod, tmod, dtype)
    return compare(kmod, tmod, arrays, dtype, grad, kmod, tmod)
