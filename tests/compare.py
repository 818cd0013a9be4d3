"""Helpers for differential tests against PyTorch (CPU).

Typical use:
    torch = require_torch()
    x = randn(3, 4)                   # a NumPy array
    kx, tx = both(x, requires_grad=True)
    assert_close(kiln_fn(kx), torch_fn(tx))
"""

import numpy as np
import pytest

import kiln

_TORCH_DTYPES = {
    "float32": "float32", "float64": "float64", "float16": "float16", "bfloat16": "bfloat16",
    "int64": "int64", "int32": "int32", "int16": "int16", "int8": "int8", "uint8": "uint8",
    "bool": "bool",
}


def require_torch():
    return pytest.importorskip("torch")


def dtype_name(dt):
    """'float32' for kiln.float32 or torch.float32."""
    return repr(dt).split(".")[-1]


def torch_dtype(kiln_dtype):
    torch = require_torch()
    return getattr(torch, _TORCH_DTYPES[dtype_name(kiln_dtype)])


def kiln_dtype(torch_dtype_):
    return getattr(kiln, dtype_name(torch_dtype_))


def randn(*shape, dtype=np.float64, rng=None):
    rng = rng or np.random.default_rng(0)
    return rng.standard_normal(shape).astype(dtype)


def both(arr, requires_grad=False, dtype=None):
    """The same data as a kiln tensor and a torch tensor (copies, independent)."""
    torch = require_torch()
    arr = np.asarray(arr)
    k = kiln.tensor(arr.copy())
    t = torch.tensor(arr.copy())
    if dtype is not None:
        k = k.to(dtype)
        t = t.to(torch_dtype(dtype))
    if requires_grad:
        k.requires_grad_(True)
        t.requires_grad_(True)
    return k, t


def to_numpy(x):
    """NumPy array of a kiln tensor, torch tensor, or anything array-like (bf16/f16 as f32)."""
    if isinstance(x, kiln.Tensor):
        x = x.detach()
        if x.dtype in (kiln.bfloat16, kiln.float16):
            x = x.float()
        return x.numpy()
    if type(x).__module__.startswith("torch"):
        x = x.detach()
        if str(x.dtype) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def assert_close(actual, expected, rtol=None, atol=None, check_dtype=True):
    """Values, shape and dtype of a kiln result equal the torch (or NumPy) reference."""
    if isinstance(actual, (tuple, list)):
        assert isinstance(expected, (tuple, list)) and len(actual) == len(expected)
        for a, e in zip(actual, expected):
            assert_close(a, e, rtol, atol, check_dtype)
        return
    if check_dtype and isinstance(actual, kiln.Tensor) and hasattr(expected, "dtype") and \
            type(expected).__module__.startswith("torch"):
        assert dtype_name(actual.dtype) == dtype_name(expected.dtype), (actual.dtype, expected.dtype)
    a, e = to_numpy(actual), to_numpy(expected)
    assert a.shape == e.shape, f"shape {a.shape} != {e.shape}"
    if rtol is None:
        low = a.dtype in (np.float32,) or e.dtype == np.float32
        half = isinstance(actual, kiln.Tensor) and actual.dtype in (kiln.float16, kiln.bfloat16)
        rtol = 1e-2 if half else (1e-5 if low else 1e-10)
    if atol is None:
        atol = rtol
    if a.dtype.kind in "fc" or e.dtype.kind in "fc":
        np.testing.assert_allclose(a.astype(np.float64), e.astype(np.float64), rtol=rtol,
                                   atol=atol, equal_nan=True)
    else:
        np.testing.assert_array_equal(a, e)


def noncontiguous(k, t):
    """Transposed views of the same data in kiln and torch (for layout coverage)."""
    return k.transpose(0, -1), t.transpose(0, -1)
