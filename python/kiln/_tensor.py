"""Python-level methods of kiln.Tensor (the class itself is defined in C++).

Only things that are naturally Python live here: printing, conversion to
Python values, and the thin wrappers that parse PyTorch-style arguments.
"""

import builtins

import numpy as np

from kiln import _C, _tensor_str
from kiln._creation import _device

Tensor = _C.Tensor


def _method(fn):
    setattr(Tensor, fn.__name__, fn)
    return fn


# ---- printing and NumPy ------------------------------------------------------------


@_method
def __repr__(self):
    return _tensor_str.tensor_repr(self)


Tensor.__str__ = Tensor.__repr__
Tensor.__array_priority__ = 1000  # NumPy defers binary operators to kiln's


@_method
def __array__(self, dtype=None, copy=None):
    """np.asarray(t): shares memory when no conversion is needed and copy is not True."""
    a = self.numpy()
    if dtype is not None and np.dtype(dtype) != a.dtype:
        if copy is False:
            raise ValueError(f"[__array__] can't convert {self.dtype!r} to {np.dtype(dtype)} "
                             "without a copy (copy=False)")
        return a.astype(dtype)
    return a.copy() if copy else a


# ---- Python values ------------------------------------------------------------------


@_method
def tolist(self):
    t = self.detach().cpu()
    if t.dtype in (_C.bfloat16, _C.float16):
        t = t.float()
    return t.numpy().tolist()


@_method
def __len__(self):
    if self.ndim == 0:
        raise TypeError("len() of a 0-d tensor")
    return self.shape[0]


@_method
def __bool__(self):
    if self.numel() != 1:
        raise RuntimeError(
            f"Boolean value of Tensor with {self.numel()} elements is ambiguous")
    return builtins.bool(self.item())


@_method
def __float__(self):
    return builtins.float(self.item())


@_method
def __int__(self):
    return builtins.int(self.item())


@_method
def __index__(self):
    if self.dtype.is_floating_point or self.numel() != 1:
        raise TypeError("only integer tensors of a single element can be converted to an index")
    return builtins.int(self.item())


Tensor.__hash__ = lambda self: id(self)


# ---- conversions --------------------------------------------------------------------


@_method
def to(self, *args, dtype=None, device=None, non_blocking=False, copy=False):
    """to(dtype) / to(device) / to(device, dtype) / to(other_tensor), as in PyTorch."""
    for a in args:
        if isinstance(a, _C.dtype):
            dtype = a
        elif isinstance(a, Tensor):
            dtype, device = a.dtype, a.device
        elif a is not None:
            device = a
    t = self
    if device is not None:
        t = t._to_device(_device(device), copy, non_blocking)
        copy = False
    if dtype is not None:
        t = t._to_dtype(dtype, copy)
    elif copy:
        t = t.clone()
    return t


def _converter(name, dtype):
    def convert(self):
        return self._to_dtype(getattr(_C, dtype))

    convert.__name__ = name
    setattr(Tensor, name, convert)


for _name, _dtype in [("float", "float32"), ("double", "float64"), ("half", "float16"),
                      ("bfloat16", "bfloat16"), ("long", "int64"), ("int", "int32"),
                      ("short", "int16"), ("char", "int8"), ("byte", "uint8"), ("bool", "bool")]:
    _converter(_name, _dtype)


@_method
def cpu(self):
    return self._to_device(_C.device("cpu"))


@_method
def cuda(self, device=None, non_blocking=False):
    d = _device("cuda" if device is None else device)
    if d.type != "cuda":
        raise ValueError(f"[cuda] expected a CUDA device, got {d}")
    return self._to_device(d, False, non_blocking)


@_method
def pin_memory(self, device=None):
    """A copy of this CPU tensor in page-locked memory (fast, asynchronous copies to the GPU)."""
    return self if self.is_pinned() else _C._pin_memory(self)


@_method
def is_pinned(self, device=None):
    return _C._is_pinned(self)


@_method
def record_stream(self, stream):
    """Marks this CUDA tensor as used by `stream`: freeing its memory then waits for the work
    `stream` has queued (see Note [Streams that use a block] in cuda/allocator.cpp)."""
    if self.device.type != "cuda":
        raise RuntimeError(f"[record_stream] expected a CUDA tensor, got one on {self.device}")
    from kiln import cuda

    base = self.data_ptr() - self.storage_offset() * self.element_size()
    cuda._lazy()._record_stream(base, stream.cuda_stream)


@_method
def type_as(self, other):
    if not isinstance(other, Tensor):
        raise TypeError(f"[type_as] expected a Tensor, got {type(other).__name__}")
    return self._to_dtype(other.dtype)


# ---- autograd -----------------------------------------------------------------------


@_method
def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
    from kiln import autograd

    autograd.backward(self, gradient, retain_graph, create_graph, inputs=inputs)


class _RemovableHandle:
    def __init__(self, tensor, hook_id):
        self._tensor, self._id = tensor, hook_id

    def remove(self):
        _C._remove_hook(self._tensor, self._id)


@_method
def register_hook(self, hook):
    """Calls hook(grad) when the gradient for this tensor is computed; it may return a new grad."""
    return _RemovableHandle(self, _C._register_hook(self, hook))


@_method
def retain_grad(self):
    _C._retain_grad(self)


# ---- membership ---------------------------------------------------------------------


@_method
def __contains__(self, element):
    """`element in t`: whether any element of t equals `element` (a number or a tensor)."""
    if not isinstance(element, (Tensor, builtins.bool, builtins.int, builtins.float, np.generic)):
        raise RuntimeError("Tensor.__contains__ only supports Tensor or scalar, but you passed in "
                           f"a {type(element)}.")
    return not (self != element).all().item()
