"""Turning summary inputs (kiln tensors, NumPy arrays, Python numbers) into NumPy."""

import numpy as np

from kiln._C import Tensor, bfloat16


def to_numpy(value):
    """A NumPy array holding ``value``; kiln tensors are detached and moved to CPU."""
    if isinstance(value, Tensor):
        value = value.detach()
        if value.dtype == bfloat16:  # NumPy has no bfloat16
            value = value.float()
        return value.cpu().numpy()
    return np.asarray(value)


def to_float(value):
    """A Python float from a number, a one-element array or a one-element tensor."""
    if isinstance(value, (float, int)):
        return float(value)
    if isinstance(value, Tensor) and value.numel() == 1:
        return float(value)  # reads the one element, whatever the dtype or device
    array = to_numpy(value)
    if array.size != 1:
        raise ValueError(f"expected a scalar value, got an array of shape {array.shape}")
    return float(array.reshape(()))
