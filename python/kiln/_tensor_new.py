"""Tensor.new_* factories (same dtype and device as self unless given) and __format__."""

from kiln import _C
from kiln import _creation

Tensor = _C.Tensor


def _defaults(self, dtype, device):
    return (self.dtype if dtype is None else dtype), (self.device if device is None else device)


def _new(factory):
    def method(self, *size, dtype=None, device=None, requires_grad=False, **kwargs):
        dtype, device = _defaults(self, dtype, device)
        return factory(*size, dtype=dtype, device=device, requires_grad=requires_grad, **kwargs)

    method.__name__ = "new_" + factory.__name__
    method.__doc__ = f"Like kiln.{factory.__name__}, with self's dtype and device by default."
    setattr(Tensor, method.__name__, method)


for _factory in (_creation.empty, _creation.zeros, _creation.ones):
    _new(_factory)


def new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False):
    """kiln.full with self's dtype and device by default."""
    dtype, device = _defaults(self, dtype, device)
    return _creation.full(size, fill_value, dtype=dtype, device=device,
                          requires_grad=requires_grad)


def new_tensor(self, data, dtype=None, device=None, requires_grad=False):
    """kiln.tensor(data) (a copy) with self's dtype and device by default."""
    dtype, device = _defaults(self, dtype, device)
    return _creation.tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def __format__(self, format_spec):
    """f"{loss:.3f}" formats a one-element 0-d tensor as its Python value."""
    if self.dim() == 0:
        return self.item().__format__(format_spec)
    return object.__format__(self, format_spec)


Tensor.new_full = new_full
Tensor.new_tensor = new_tensor
Tensor.__format__ = __format__
