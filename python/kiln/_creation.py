"""Tensor creation: kiln.tensor, zeros, ones, full, empty and the *_like forms."""

import builtins

import numpy as np

from kiln import _C

_NUMPY_TO_KILN = {
    np.dtype("bool"): _C.bool,
    np.dtype("uint8"): _C.uint8,
    np.dtype("int8"): _C.int8,
    np.dtype("int16"): _C.int16,
    np.dtype("int32"): _C.int32,
    np.dtype("int64"): _C.int64,
    np.dtype("float16"): _C.float16,
    np.dtype("float32"): _C.float32,
    np.dtype("float64"): _C.float64,
}


def _device(device):
    if device is None:
        return _C.device("cpu")
    if isinstance(device, _C.device):
        return device
    if isinstance(device, builtins.int):
        return _C.device("cuda", device)
    return _C.device(str(device))


def _size(size, op):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for s in size:
        if not isinstance(s, builtins.int) or isinstance(s, builtins.bool):
            raise TypeError(f"[{op}] size must be a sequence of ints, got {size!r}")
    return list(size)


def _finish(t, requires_grad):
    if requires_grad:
        t.requires_grad_(True)
    return t


def _infer_dtype(data, arr):
    """The dtype torch.tensor would give `data`: Python floats become the default dtype."""
    if isinstance(data, np.ndarray) or isinstance(data, np.generic):
        if arr.dtype not in _NUMPY_TO_KILN:
            raise TypeError(f"[tensor] can't convert np.ndarray of type {arr.dtype}")
        return _NUMPY_TO_KILN[arr.dtype]
    if arr.dtype.kind == "f":
        return _C.get_default_dtype()
    if arr.dtype.kind in "iu":
        return _C.int64
    if arr.dtype.kind == "b":
        return _C.bool
    raise TypeError(
        f"[tensor] could not infer dtype of {type(data).__name__} (numpy gave {arr.dtype})"
    )


def _tensors_to_nested(data):
    """Replace kiln tensors inside lists by nested Python values."""
    if isinstance(data, _C.Tensor):
        return data.tolist()
    if isinstance(data, (list, tuple)):
        return [_tensors_to_nested(d) for d in data]
    return data


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new tensor holding a copy of `data` (nested lists, numbers, NumPy arrays, tensors)."""
    if isinstance(data, _C.Tensor):
        t = data.detach().clone()
        if dtype is not None:
            t = t.to(dtype)
        return _finish(t.to(_device(device)) if device is not None else t, requires_grad)
    if isinstance(data, (list, tuple)):
        data = _tensors_to_nested(data)
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError) as e:
        raise ValueError(f"[tensor] could not convert data to a tensor: {e}") from None
    if arr.dtype == object:
        raise TypeError(
            f"[tensor] could not convert {type(data).__name__} to a tensor "
            "(ragged nested sequence or non-numeric elements)"
        )
    target = dtype if dtype is not None else _infer_dtype(data, arr)
    if arr.dtype not in _NUMPY_TO_KILN:
        arr = arr.astype(np.float64 if arr.dtype.kind == "f" else np.int64)
    t = _C.from_numpy(np.array(arr, copy=True, order="C")).to(target)
    if device is not None:
        t = t.to(_device(device))
    return _finish(t, requires_grad)


def as_tensor(data, dtype=None, device=None):
    """Like tensor(), but shares memory with a NumPy array or tensor when it can."""
    if isinstance(data, _C.Tensor):
        t = data if dtype is None else data.to(dtype)
        return t if device is None else t.to(_device(device))
    if isinstance(data, np.ndarray) and data.dtype in _NUMPY_TO_KILN and device is None:
        try:
            t = _C.from_numpy(data)
        except ValueError:
            t = _C.from_numpy(np.ascontiguousarray(data))
        return t if dtype is None else t.to(dtype)
    return tensor(data, dtype=dtype, device=device)


def _dtype(dtype):
    return _C.get_default_dtype() if dtype is None else dtype


def empty(*size, dtype=None, device=None, requires_grad=False):
    return _finish(_C.empty(_size(size, "empty"), _dtype(dtype), _device(device)), requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad=False):
    return _finish(_C.zeros(_size(size, "zeros"), _dtype(dtype), _device(device)), requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    return _finish(_C.ones(_size(size, "ones"), _dtype(dtype), _device(device)), requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    if dtype is None:
        dtype = (
            _C.bool if isinstance(fill_value, builtins.bool)
            else _C.int64 if isinstance(fill_value, builtins.int)
            else _C.get_default_dtype()
        )
    t = _C.full(_size((size,), "full"), fill_value, dtype, _device(device))
    return _finish(t, requires_grad)


def _like(fn, t, dtype, device, requires_grad, *args):
    if not isinstance(t, _C.Tensor):
        raise TypeError(f"[{fn.__name__}_like] expected a Tensor as input, got {type(t).__name__}")
    return _finish(
        fn(list(t.shape), *args, t.dtype if dtype is None else dtype,
           t.device if device is None else _device(device)),
        requires_grad,
    )


def empty_like(input, dtype=None, device=None, requires_grad=False):
    return _like(_C.empty, input, dtype, device, requires_grad)


def zeros_like(input, dtype=None, device=None, requires_grad=False):
    return _like(_C.zeros, input, dtype, device, requires_grad)


def ones_like(input, dtype=None, device=None, requires_grad=False):
    return _like(_C.ones, input, dtype, device, requires_grad)


def full_like(input, fill_value, dtype=None, device=None, requires_grad=False):
    return _like(_C.full, input, dtype, device, requires_grad, fill_value)
