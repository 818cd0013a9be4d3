"""Tensor.new_* factories (same dtype and device as self unless given), __format__ and
__deepcopy__ (so copy.deepcopy works on modules holding tensors)."""

from kiln import _C, _creation

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
    return _creation.full(size, fill_value, dtype=dtype, device=device, requires_grad=requires_grad)


def new_tensor(self, data, dtype=None, device=None, requires_grad=False):
    """kiln.tensor(data) (a copy) with self's dtype and device by default."""
    dtype, device = _defaults(self, dtype, device)
    return _creation.tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def __format__(self, format_spec):
    """f"{loss:.3f}" formats a one-element 0-d tensor as its Python value."""
    if self.dim() == 0:
        return self.item().__format__(format_spec)
    return object.__format__(self, format_spec)


def __deepcopy__(self, memo):
    """A copy with its own memory; only leaves can be deep-copied, as in PyTorch."""
    if not self.is_leaf:
        raise RuntimeError(
            "Only Tensors created explicitly by the user (graph leaves) support "
            "the deepcopy protocol at the moment."
        )
    if id(self) not in memo:
        copy = self.detach().clone()
        if self.requires_grad:
            copy.requires_grad_(True)
        if self.grad is not None:
            copy.grad = self.grad.detach().clone()
        memo[id(self)] = copy
    return memo[id(self)]


Tensor.new_full = new_full
Tensor.__deepcopy__ = __deepcopy__
Tensor.new_tensor = new_tensor
Tensor.__format__ = __format__
