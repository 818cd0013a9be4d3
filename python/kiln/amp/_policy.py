"""Autocast policies for ops kiln composes in Python (the C++ ops decide for
themselves, see Note [Autocast] in csrc/kiln/autocast.h).

`@op_policy(cpu=..., cuda=...)` takes per device type one of:
  "lower"   floating inputs (float64 excepted) to the autocast dtype
  "fp32"    floating inputs (float64 excepted) to float32
  "promote" floating inputs to the widest floating input type
  "keep"    no casts (PyTorch has this op as one unlisted kernel)
  "banned"  raises, as PyTorch does for binary_cross_entropy on CUDA
  None      the op runs as called: the ops it is built from decide
The op then runs with autocast suspended, as a C++ op would.
"""

import functools

import kiln
from kiln import _C

_BANNED = (
    "{op} are unsafe to autocast.\n"
    "Many models use a sigmoid layer right before the binary cross entropy layer.\n"
    "In this case, combine the two layers using kiln.nn.functional.binary_cross_entropy_with_logits\n"
    "or kiln.nn.BCEWithLogitsLoss.  binary_cross_entropy_with_logits and BCEWithLogits are\n"
    "safe to autocast."
)


def _tensors(args, kwargs):
    for a in (*args, *kwargs.values()):
        if isinstance(a, kiln.Tensor):
            yield a
        elif isinstance(a, (list, tuple)):
            yield from (t for t in a if isinstance(t, kiln.Tensor))


def _eligible(t, device_type):
    return t.is_floating_point() and t.dtype != kiln.float64 and t.device.type == device_type


def _promoted(tensors, device_type, lower):
    widest = lower
    for t in tensors:
        if not _eligible(t, device_type):
            continue
        if t.dtype == kiln.float32 or widest == kiln.float32:
            widest = kiln.float32
        elif t.dtype != widest:
            raise TypeError(
                f"[autocast] cannot promote {widest} and {t.dtype} inputs under autocast "
                f"with dtype {lower}"
            )
    return widest


def _cast_args(args, kwargs, dtype):
    def cast(a):
        if isinstance(a, kiln.Tensor):
            return _C._autocast_cast(a, dtype)
        if isinstance(a, (list, tuple)):
            return type(a)(cast(t) for t in a)
        return a

    return [cast(a) for a in args], {k: cast(v) for k, v in kwargs.items()}


def _run(fn, name, cpu, cuda, args, kwargs):
    first = next(_tensors(args, kwargs), None)
    if first is None:
        return fn(*args, **kwargs)
    device_type = first.device.type
    policy = cpu if device_type == "cpu" else cuda
    if policy is None or not _C.is_autocast_enabled(device_type):
        return fn(*args, **kwargs)
    if policy == "banned":
        raise RuntimeError(_BANNED.format(op=f"kiln.nn.functional.{name} and kiln.nn.BCELoss"))
    if policy != "keep":
        lower = _C.get_autocast_dtype(device_type)
        if policy == "lower":
            dtype = lower
        elif policy == "fp32":
            dtype = kiln.float32
        else:
            dtype = _promoted(_tensors(args, kwargs), device_type, lower)
        args, kwargs = _cast_args(args, kwargs, dtype)
    _C._set_autocast_suspended(True)
    try:
        return fn(*args, **kwargs)
    finally:
        _C._set_autocast_suspended(False)


def op_policy(cpu=None, cuda=None):
    """Decorator giving a Python-level op PyTorch's autocast policy (see module doc)."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if not _C._is_autocast_active():  # the common case: one C++ call
                return fn(*args, **kwargs)
            return _run(fn, fn.__name__, cpu, cuda, args, kwargs)

        return wrapper

    return decorate
