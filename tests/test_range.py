"""arange, linspace, eye: differential against PyTorch."""

import kiln
import numpy as np
import pytest
from compare import assert_close, require_torch


@pytest.mark.parametrize("args", [
    (5,), (0,), (1, 5), (1, 5, 0.5), (5, 1, -1), (-3, 7, 3), (0, 1, 0.1), (0.5, 2.25, 0.25),
    (10, 0, -3), (1.0, 4), (0, 10, 2.5), (-1.5, -10, -0.7), (3, 3), (2 ** 40, 2 ** 40 + 5),
    (2 ** 60, 2 ** 60 + 7, 3),
])
def test_arange_matches_torch(args):
    torch = require_torch()
    assert_close(kiln.arange(*args), torch.arange(*args))


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64", "int8", "uint8",
                                   "float16", "bfloat16"])
def test_arange_dtypes(dtype):
    torch = require_torch()
    assert_close(kiln.arange(1, 9, 2, dtype=getattr(kiln, dtype)),
                 torch.arange(1, 9, 2, dtype=getattr(torch, dtype)))
    if dtype.startswith(("float", "bfloat")):
        assert_close(kiln.arange(0, 3, 0.25, dtype=getattr(kiln, dtype)),
                     torch.arange(0, 3, 0.25, dtype=getattr(torch, dtype)))
        # PyTorch's vectorized loop rounds differently in the last bits; sizes must agree.
        assert_close(kiln.arange(1e-3, 1, 0.01, dtype=getattr(kiln, dtype)),
                     torch.arange(1e-3, 1, 0.01, dtype=getattr(torch, dtype)))
    else:
        assert_close(kiln.arange(0.5, 7.9, 1.5, dtype=getattr(kiln, dtype)),
                     torch.arange(0.5, 7.9, 1.5, dtype=getattr(torch, dtype)))


def test_arange_dtype_inference_and_keywords():
    assert kiln.arange(3).dtype == kiln.int64
    assert kiln.arange(3.0).dtype == kiln.float32
    assert kiln.arange(0, 3, 1.0).dtype == kiln.float32
    assert kiln.arange(np.int64(4)).tolist() == [0, 1, 2, 3]
    assert kiln.arange(kiln.tensor(3)).tolist() == [0, 1, 2]
    kiln.set_default_dtype(kiln.float64)
    try:
        assert kiln.arange(0.0, 1.0, 0.5).dtype == kiln.float64
    finally:
        kiln.set_default_dtype(kiln.float32)
    t = kiln.arange(4.0, requires_grad=True)
    assert t.requires_grad and t.is_leaf
    assert kiln.arange(start=1, end=3).tolist() == [1, 2]


def test_arange_errors():
    with pytest.raises(ValueError, match=r"\[arange\] step must be nonzero"):
        kiln.arange(0, 5, 0)
    with pytest.raises(ValueError, match=r"\[arange\] upper bound and lower bound inconsistent"):
        kiln.arange(0, 5, -1)
    with pytest.raises(ValueError, match=r"\[arange\] upper bound"):
        kiln.arange(5, 0)
    with pytest.raises(ValueError, match=r"\[arange\] unsupported range"):
        kiln.arange(0, float("inf"))
    with pytest.raises(ValueError, match=r"\[arange\] step must be nonzero"):
        kiln.arange(0, 5, 0.5, dtype=kiln.int64)  # the step truncates to 0, as in PyTorch
    with pytest.raises(TypeError, match=r"\[arange\] end must be a number"):
        kiln.arange("5")


@pytest.mark.parametrize("start,end,steps", [
    (0, 1, 5), (-2, 3, 7), (1, 0, 4), (0, 10, 1), (3, 3, 4), (0, 1, 0), (-1e3, 1e3, 101),
    (0.1, 0.7, 13), (5, -5, 2),
])
@pytest.mark.parametrize("dtype", [None, "float64", "int64", "int32", "float16"])
def test_linspace_matches_torch(start, end, steps, dtype):
    torch = require_torch()
    kd = None if dtype is None else getattr(kiln, dtype)
    td = None if dtype is None else getattr(torch, dtype)
    got = kiln.linspace(start, end, steps, dtype=kd)
    want = torch.linspace(start, end, steps, dtype=td)
    rtol = 1e-2 if dtype == "float16" else 1e-6 if dtype is None else 1e-12
    assert_close(got, want, rtol=rtol, atol=rtol * max(abs(start), abs(end), 1))


def test_linspace_errors_and_scalars():
    with pytest.raises(ValueError, match=r"\[linspace\] number of steps must be non-negative"):
        kiln.linspace(0, 1, -1)
    assert kiln.linspace(kiln.tensor(0.0), kiln.tensor(2.0), 3).tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("n,m", [(3, None), (2, 4), (4, 2), (0, None), (1, 1), (0, 3), (3, 0)])
@pytest.mark.parametrize("dtype", [None, "float64", "int64", "bool"])
def test_eye_matches_torch(n, m, dtype):
    torch = require_torch()
    kd = None if dtype is None else getattr(kiln, dtype)
    td = None if dtype is None else getattr(torch, dtype)
    got = kiln.eye(n, m, dtype=kd) if m is not None else kiln.eye(n, dtype=kd)
    want = torch.eye(n, m, dtype=td) if m is not None else torch.eye(n, dtype=td)
    assert_close(got, want)


def test_eye_errors_and_grad():
    with pytest.raises(ValueError, match=r"\[eye\] n must be greater or equal to 0"):
        kiln.eye(-1)
    with pytest.raises(ValueError, match=r"\[eye\] m must be greater or equal to 0"):
        kiln.eye(2, -2)
    e = kiln.eye(3, requires_grad=True)
    assert e.requires_grad and e.is_leaf
    assert e.is_contiguous()
