"""Random tensor creation: rand, randn, randint, randperm and the *_like forms.

The samplers live in C++ (kiln/ops/random.h); these wrappers accept PyTorch's
signatures (`*size` or a tuple, dtype/device/requires_grad keywords).
"""

import builtins

from kiln import _C
from kiln._creation import _device, _dtype, _finish, _size


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Uniform samples in [0, 1)."""
    t = _C._rand(_size(size, "rand"), _dtype(dtype), _device(device), generator)
    return _finish(t, requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Standard normal samples."""
    t = _C._randn(_size(size, "randn"), _dtype(dtype), _device(device), generator)
    return _finish(t, requires_grad)


def _randint_args(args, low, high, size):
    """(low, high, size) from randint's overloads: (high, size) and (low, high, size)."""
    if high is not None:  # keyword form: randint(low=.., high=.., size=..)
        args = (0 if low is None else low, high) + args
    if size is not None:
        args = args + (size,)
    if len(args) == 2:
        low, (high, size) = 0, args
    elif len(args) == 3:
        low, high, size = args
    else:
        raise TypeError(
            "[randint] expected randint(high, size) or randint(low, high, size), "
            f"got {len(args)} positional arguments"
        )
    for name, v in (("low", low), ("high", high)):
        if not isinstance(v, builtins.int) or isinstance(v, builtins.bool):
            raise TypeError(f"[randint] {name} must be an int, got {type(v).__name__}")
    return low, high, size


def randint(*args, low=None, high=None, size=None, generator=None, dtype=None, device=None,
            requires_grad=False):
    """Integers uniform in [low, high): randint(high, size) or randint(low, high, size)."""
    low, high, size = _randint_args(args, low, high, size)
    t = _C._randint(low, high, _size((size,), "randint"), _C.int64 if dtype is None else dtype,
                    _device(device), generator)
    return _finish(t, requires_grad)


def randperm(n, generator=None, dtype=None, device=None, requires_grad=False):
    """A random permutation of 0 .. n-1."""
    t = _C._randperm(n, _C.int64 if dtype is None else dtype, _device(device), generator)
    return _finish(t, requires_grad)


def _like(input, dtype, device, op):
    if not isinstance(input, _C.Tensor):
        raise TypeError(f"[{op}] expected a Tensor as input, got {type(input).__name__}")
    return (list(input.shape), input.dtype if dtype is None else dtype,
            input.device if device is None else _device(device))


def rand_like(input, generator=None, dtype=None, device=None, requires_grad=False):
    return _finish(_C._rand(*_like(input, dtype, device, "rand_like"), generator), requires_grad)


def randn_like(input, generator=None, dtype=None, device=None, requires_grad=False):
    return _finish(_C._randn(*_like(input, dtype, device, "randn_like"), generator), requires_grad)


def randint_like(input, low=0, high=None, generator=None, dtype=None, device=None,
                 requires_grad=False):
    """randint_like(input, high) or randint_like(input, low, high)."""
    if high is None:
        low, high = 0, low
    shape, dt, dev = _like(input, dtype, device, "randint_like")
    return _finish(_C._randint(low, high, shape, dt, dev, generator), requires_grad)
