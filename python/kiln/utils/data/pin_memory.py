"""pin_memory(batch): the batch with every tensor copied into page-locked host memory, so
its copy to the GPU (`.cuda(non_blocking=True)`) runs asynchronously at full speed."""

import collections.abc
import copy

from kiln import _C


def pin_memory(data):
    """Pins tensors inside `data` (mappings, namedtuples, tuples, lists, objects with a
    pin_memory() method), keeping every container's type; anything else is returned as is."""
    if isinstance(data, _C.Tensor) or (hasattr(data, "pin_memory") and not isinstance(data, type)):
        return data.pin_memory()
    if isinstance(data, (str, bytes)):
        return data
    if isinstance(data, collections.abc.Mapping):
        pinned = {k: pin_memory(v) for k, v in data.items()}
        if isinstance(data, collections.abc.MutableMapping):
            # A copy keeps the mapping's own type and extra attributes.
            clone = copy.copy(data)
            clone.update(pinned)
            return clone
        return type(data)(pinned)
    if isinstance(data, tuple) and hasattr(data, "_fields"):  # namedtuple
        return type(data)(*(pin_memory(v) for v in data))
    if isinstance(data, tuple):
        return tuple(pin_memory(v) for v in data)
    if isinstance(data, collections.abc.Sequence):
        pinned = [pin_memory(v) for v in data]
        if isinstance(data, list):
            return pinned
        try:
            return type(data)(pinned)
        except TypeError:  # a sequence type that can't be built from a list
            return pinned
    return data
