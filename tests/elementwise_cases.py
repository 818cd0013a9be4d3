"""Shared inputs and op tables for the elementwise tests."""

import kiln
import numpy as np
from compare import require_torch
from kiln.autograd import gradgradcheck

torch = require_torch()

FLOAT_DTYPES = [kiln.float32, kiln.float64]


# ---- input domains ------------------------------------------------------------------


def domain(kind, shape, rng, dtype=np.float64):
    x = rng.standard_normal(shape)
    if kind == "pos":
        x = np.abs(x) + 0.5
    elif kind == "unit":
        x = np.tanh(x) * 0.9
    elif kind == "nonzero":
        x = np.where(x < 0, x - 0.3, x + 0.3)
    elif kind == "gt-1":
        x = np.abs(x) - 0.5
    elif kind == "small":
        x = np.tanh(x)
    elif kind == "nonint":  # away from integers and half-integers (rounding is discontinuous)
        x = np.floor(x * 3) + 0.1 + 0.3 * rng.random(shape)
    return x.astype(dtype)


def rng(seed=0):
    return np.random.default_rng(seed)


def gradgrad(fn, *arrays):
    """gradgradcheck with a fixed random grad_output (double backward through fn's formula)."""
    ins = tuple(kiln.tensor(a, requires_grad=True) for a in arrays)
    out = fn(*ins)
    go = kiln.tensor(rng(11).standard_normal(tuple(out.shape)), requires_grad=True)
    assert gradgradcheck(fn, ins, grad_outputs=(go,))


# ---- binary ops -----------------------------------------------------------------------

# name -> (kiln fn, torch fn, domain of a, domain of b, accepts ints, differentiable)
BINARY = {
    "add": (kiln.add, torch.add, None, None, True, True),
    "sub": (kiln.sub, torch.sub, None, None, True, True),
    "mul": (kiln.mul, torch.mul, None, None, True, True),
    "div": (kiln.div, torch.div, None, "nonzero", True, True),
    "true_divide": (kiln.true_divide, torch.true_divide, None, "nonzero", True, False),
    "floor_divide": (kiln.floor_divide, torch.floor_divide, None, "nonzero", True, False),
    "remainder": (kiln.remainder, torch.remainder, "nonint", "pos", True, True),
    "fmod": (kiln.fmod, torch.fmod, "nonint", "pos", True, True),
    "pow": (kiln.pow, torch.pow, "pos", None, True, True),
    "maximum": (kiln.maximum, torch.maximum, None, None, True, True),
    "minimum": (kiln.minimum, torch.minimum, None, None, True, True),
    "fmax": (kiln.fmax, torch.fmax, None, None, True, True),
    "fmin": (kiln.fmin, torch.fmin, None, None, True, True),
    "atan2": (kiln.atan2, torch.atan2, None, "nonzero", True, True),
    "hypot": (kiln.hypot, torch.hypot, "nonzero", None, False, True),
    "rsub": (kiln.rsub, torch.rsub, None, None, True, True),
    "eq": (kiln.eq, torch.eq, "nonint", "nonint", True, False),
    "ne": (kiln.ne, torch.ne, None, None, True, False),
    "lt": (kiln.lt, torch.lt, None, None, True, False),
    "le": (kiln.le, torch.le, None, None, True, False),
    "gt": (kiln.gt, torch.gt, None, None, True, False),
    "ge": (kiln.ge, torch.ge, None, None, True, False),
    "logical_and": (kiln.logical_and, torch.logical_and, None, None, True, False),
    "logical_or": (kiln.logical_or, torch.logical_or, None, None, True, False),
    "logical_xor": (kiln.logical_xor, torch.logical_xor, None, None, True, False),
    "bitwise_and": (kiln.bitwise_and, torch.bitwise_and, None, None, True, False),
    "bitwise_or": (kiln.bitwise_or, torch.bitwise_or, None, None, True, False),
    "bitwise_xor": (kiln.bitwise_xor, torch.bitwise_xor, None, None, True, False),
}
BITWISE = ("bitwise_and", "bitwise_or", "bitwise_xor")
FLOAT_BINARY = [n for n in BINARY if n not in BITWISE]
BROADCAST_SHAPES = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((2, 3, 4), (4,)), ((), (3,)), ((4,), ()),
                    ((0, 3), (1, 3)), ((5, 1, 2), (3, 1)), ((1,), ()), ((2, 0), (2, 1))]


def binary_inputs(name, sa, sb, dtype=np.float64, seed=0):
    _, _, da, db, _, _ = BINARY[name]
    r = rng(seed)
    return domain(da, sa, r, dtype), domain(db, sb, r, dtype)
