"""kiln.autocast: automatic mixed precision, as torch.autocast.

The cast decisions are made in C++ by the ops themselves (Note [Autocast] in
csrc/kiln/autocast.h); this module only sets the thread-local state. Ops that
kiln composes in Python follow the same policies through `_policy` below.
"""

import collections.abc
import functools
import warnings

import kiln
from kiln import _C

__all__ = ["autocast", "custom_bwd", "custom_fwd", "is_autocast_available"]

_SUPPORTED_DTYPES = (kiln.bfloat16, kiln.float16)


def is_autocast_available(device_type):
    """Whether autocast supports `device_type` ('cpu' and 'cuda' in kiln)."""
    return _C._is_autocast_available(device_type)


class autocast:
    """Context manager and decorator: ops on `device_type` tensors run in the dtype
    PyTorch's per-op cast policy gives (matmul/conv in `dtype`, reductions, losses
    and norms in float32, ...). `dtype` defaults to float16 for CUDA and bfloat16
    for CPU. Nests; `enabled=False` turns it off inside an enabled region."""

    def __init__(self, device_type, dtype=None, enabled=True, cache_enabled=None):
        if not isinstance(device_type, str):
            raise ValueError(  # noqa: TRY004  (PyTorch raises ValueError here)
                f"Expected `device_type` of type `str`, got: `{type(device_type)}`"
            )
        if not is_autocast_available(device_type):
            raise RuntimeError(
                f"User specified an unsupported autocast device_type '{device_type}'"
            )
        self.device = device_type
        self.fast_dtype = _C.get_autocast_dtype(device_type) if dtype is None else dtype
        self._cache_enabled = (
            _C.is_autocast_cache_enabled() if cache_enabled is None else cache_enabled
        )
        if enabled:
            if device_type == "cuda":
                if not kiln.cuda.is_available():
                    warnings.warn("CUDA is not available. Disabling autocast.", stacklevel=2)
                    enabled = False
            elif self.fast_dtype not in _SUPPORTED_DTYPES:
                name = device_type.upper()
                warnings.warn(
                    f"In {name} autocast, but the target dtype is not supported. Disabling "
                    f"autocast.\n{name} Autocast only supports dtypes of kiln.bfloat16, "
                    "kiln.float16 currently.",
                    stacklevel=2,
                )
                enabled = False
        self._enabled = enabled

    def __enter__(self):
        self.prev_cache_enabled = _C.is_autocast_cache_enabled()
        self.prev = _C.is_autocast_enabled(self.device)
        self.prev_fastdtype = _C.get_autocast_dtype(self.device)
        # An explicit region takes effect even where autocast was suspended
        # (inside a backward pass: custom_bwd restores the forward's state).
        self.prev_suspended = _C._is_autocast_suspended()
        _C.set_autocast_enabled(self.device, self._enabled)
        _C.set_autocast_dtype(self.device, self.fast_dtype)
        _C.autocast_increment_nesting()
        _C.set_autocast_cache_enabled(self._cache_enabled)
        _C._set_autocast_suspended(False)
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        if _C.autocast_decrement_nesting() == 0:
            _C.clear_autocast_cache()
        _C.set_autocast_enabled(self.device, self.prev)
        _C.set_autocast_dtype(self.device, self.prev_fastdtype)
        _C.set_autocast_cache_enabled(self.prev_cache_enabled)
        _C._set_autocast_suspended(self.prev_suspended)
        return False

    def __call__(self, func):
        if not callable(func):
            raise TypeError(
                f"autocast()(func) requires a callable, but got {type(func).__name__}. Did you "
                "mean to use autocast as a context manager? For example:\n"
                "    with kiln.autocast(device_type=...):\n"
                "        output = model(input)"
            )

        @functools.wraps(func)
        def decorated(*args, **kwargs):
            with autocast(self.device, self.fast_dtype, self._enabled, self._cache_enabled):
                return func(*args, **kwargs)

        return decorated


def _cast(value, device_type, dtype):
    """Floating tensors (not float64) on `device_type` in `value`, cast to `dtype`;
    lists, tuples and dicts are walked."""
    if isinstance(value, kiln.Tensor):
        eligible = (
            value.is_floating_point()
            and value.device.type == device_type
            and value.dtype != kiln.float64
        )
        return value.to(dtype) if eligible else value
    if isinstance(value, (str, bytes)):
        return value
    if isinstance(value, collections.abc.Mapping):
        return {
            _cast(k, device_type, dtype): _cast(v, device_type, dtype) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(_cast(v, device_type, dtype) for v in value)
    return value


def custom_fwd(fwd=None, *, device_type, cast_inputs=None):
    """Decorator for the `forward` of a kiln.autograd.Function: with `cast_inputs`,
    floating inputs are cast to it and forward runs with autocast off (when called
    inside an autocast region); without, forward runs under the current state."""
    if not isinstance(device_type, str):
        raise ValueError(  # noqa: TRY004  (PyTorch raises ValueError here)
            f"Expected `device_type` of type `str`, got: `{type(device_type)}`"
        )
    if fwd is None:
        return functools.partial(custom_fwd, device_type=device_type, cast_inputs=cast_inputs)

    @functools.wraps(fwd)
    def decorate_fwd(*args, **kwargs):
        ctx = args[0]
        ctx._dtype = _C.get_autocast_dtype(device_type)
        if cast_inputs is None:
            ctx._fwd_used_autocast = _C.is_autocast_enabled(device_type)
            return fwd(*args, **kwargs)
        ctx._fwd_used_autocast = False
        if not _C.is_autocast_enabled(device_type):
            return fwd(*args, **kwargs)
        with autocast(device_type=device_type, enabled=False):
            return fwd(
                *_cast(args, device_type, cast_inputs), **_cast(kwargs, device_type, cast_inputs)
            )

    return decorate_fwd


def custom_bwd(bwd=None, *, device_type):
    """Decorator for the `backward` of a kiln.autograd.Function: runs it with the
    autocast state its forward ran under."""
    if not isinstance(device_type, str):
        raise ValueError(  # noqa: TRY004  (PyTorch raises ValueError here)
            f"Expected `device_type` of type `str`, got: `{type(device_type)}`"
        )
    if bwd is None:
        return functools.partial(custom_bwd, device_type=device_type)

    @functools.wraps(bwd)
    def decorate_bwd(*args, **kwargs):
        ctx = args[0]
        with autocast(device_type=device_type, enabled=ctx._fwd_used_autocast, dtype=ctx._dtype):
            return bwd(*args, **kwargs)

    return decorate_bwd
