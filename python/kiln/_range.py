"""arange, linspace and eye with PyTorch's signatures (kernels in kiln/ops/range.h)."""

import numbers

from kiln import _C
from kiln._creation import _device, _finish


def _number(v, op, name):
    """A Python number from a number or a one-element tensor."""
    if isinstance(v, _C.Tensor):
        return v.item()
    if not isinstance(v, numbers.Real):
        raise TypeError(f"[{op}] {name} must be a number, got {type(v).__name__}")
    return v


def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad=False):
    """arange(end), arange(start, end), arange(start, end, step): [start, end) by step."""
    if end is None:
        start, end = 0, start
    start, end, step = (_number(v, "arange", n) for v, n in
                        ((start, "start"), (end, "end"), (step, "step")))
    return _finish(_C._arange(start, end, step, dtype, _device(device)), requires_grad)


def linspace(start, end, steps, *, dtype=None, device=None, requires_grad=False):
    """`steps` evenly spaced values from start to end, both included."""
    start, end = _number(start, "linspace", "start"), _number(end, "linspace", "end")
    return _finish(_C._linspace(start, end, steps, dtype, _device(device)), requires_grad)


def eye(n, m=None, *, dtype=None, device=None, requires_grad=False):
    """An n x m matrix (m defaults to n) with ones on the diagonal."""
    return _finish(_C._eye(n, m, dtype, _device(device)), requires_grad)
