"""default_collate and default_convert: lists of samples to batches (torch.utils.data semantics).

In a DataLoader worker, tensors and arrays are stacked straight into shared
memory (see ``shared_memory.empty``), so sending the batch copies nothing.
"""

import copy
import re
from collections import abc

import numpy as np

import kiln
from kiln.utils.data import shared_memory

__all__ = ["collate", "default_collate", "default_collate_fn_map", "default_convert"]

_STRING_OR_OBJECT = re.compile(r"[SaUO]")
_ERR = (
    "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"
)


def _tensor_from_numpy(arr):
    if any(s < 0 for s in arr.strides):
        arr = np.ascontiguousarray(arr)
    return kiln.from_numpy(arr)


def _stack(arrays, what):
    shape = arrays[0].shape
    for i, a in enumerate(arrays):
        if a.shape != shape:
            raise RuntimeError(
                f"[default_collate] stack expects each {what} to be equal size, but got {list(shape)} at "
                f"entry 0 and {list(a.shape)} at entry {i}"
            )
    dtype = np.result_type(*arrays)
    out = shared_memory.empty((len(arrays),) + shape, dtype)
    np.stack(arrays, out=out)
    return kiln.from_numpy(out)


def collate_tensor_fn(batch, *, collate_fn_map=None):
    dtypes = {t.dtype for t in batch}
    if len(dtypes) > 1:
        raise TypeError(
            f"[default_collate] expected tensors of one dtype, got {sorted(map(str, dtypes))}"
        )
    try:
        arrays = [(t.detach() if t.requires_grad else t).numpy() for t in batch]
    except TypeError:  # a dtype NumPy lacks (bfloat16)
        if hasattr(kiln, "stack"):
            return kiln.stack(batch, 0)
        raise
    return _stack(arrays, "tensor")


def collate_numpy_array_fn(batch, *, collate_fn_map=None):
    if _STRING_OR_OBJECT.search(batch[0].dtype.str) is not None:
        raise TypeError(_ERR.format(batch[0].dtype))
    return _stack(batch, "array")


def collate_numpy_scalar_fn(batch, *, collate_fn_map=None):
    return kiln.from_numpy(np.array(batch))


def collate_float_fn(batch, *, collate_fn_map=None):
    return kiln.from_numpy(np.array(batch, dtype=np.float64))


def collate_int_fn(batch, *, collate_fn_map=None):
    return kiln.from_numpy(np.array(batch, dtype=np.bool_ if type(batch[0]) is bool else np.int64))


def collate_str_fn(batch, *, collate_fn_map=None):
    return batch


default_collate_fn_map = {
    kiln.Tensor: collate_tensor_fn,
    np.ndarray: collate_numpy_array_fn,
    (np.bool_, np.number): collate_numpy_scalar_fn,
    float: collate_float_fn,
    int: collate_int_fn,
    str: collate_str_fn,
    bytes: collate_str_fn,
}


def collate(batch, *, collate_fn_map=None):
    """Collates a list of samples, looking element types up in ``collate_fn_map``
    (type or tuple of types -> fn(batch, *, collate_fn_map)) and recursing into
    mappings, namedtuples and sequences."""
    elem = batch[0]
    elem_type = type(elem)
    if collate_fn_map is not None:
        if elem_type in collate_fn_map:
            return collate_fn_map[elem_type](batch, collate_fn_map=collate_fn_map)
        for types, fn in collate_fn_map.items():
            if isinstance(elem, types):
                return fn(batch, collate_fn_map=collate_fn_map)

    def sub(samples):
        return collate(samples, collate_fn_map=collate_fn_map)

    if isinstance(elem, abc.Mapping):
        collated = {key: sub([d[key] for d in batch]) for key in elem}
        try:
            if isinstance(elem, abc.MutableMapping):
                clone = copy.copy(elem)
                clone.update(collated)
                return clone
            return elem_type(collated)
        except TypeError:
            return collated
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
        return elem_type(*(sub(list(samples)) for samples in zip(*batch)))
    if isinstance(elem, abc.Sequence):
        size = len(elem)
        if any(len(e) != size for e in batch):
            raise RuntimeError(
                "[default_collate] each element in list of batch should be of equal size"
            )
        transposed = [sub(list(samples)) for samples in zip(*batch)]
        if isinstance(elem, tuple):
            return transposed
        try:
            if isinstance(elem, abc.MutableSequence):
                clone = copy.copy(elem)
                for i, value in enumerate(transposed):
                    clone[i] = value
                return clone
            return elem_type(transposed)
        except TypeError:
            return transposed
    raise TypeError(_ERR.format(elem_type))


def default_collate(batch):
    """Stacks tensors/arrays/numbers into tensors with a new leading batch dim;
    keeps strings as lists; recurses into dicts, namedtuples, lists and tuples
    (a batch of tuples becomes a list of collated fields)."""
    return collate(batch, collate_fn_map=default_collate_fn_map)


def default_convert(data):
    """NumPy arrays and scalars to tensors, recursing into containers (used when
    automatic batching is off, ``batch_size=None``)."""
    if isinstance(data, kiln.Tensor):
        return data
    if isinstance(data, np.ndarray):
        return data if _STRING_OR_OBJECT.search(data.dtype.str) else _tensor_from_numpy(data)
    if isinstance(data, (np.bool_, np.number)):
        return kiln.from_numpy(np.asarray(data))
    if isinstance(data, abc.Mapping):
        converted = {key: default_convert(data[key]) for key in data}
        try:
            if isinstance(data, abc.MutableMapping):
                clone = copy.copy(data)
                clone.update(converted)
                return clone
            return type(data)(converted)
        except TypeError:
            return converted
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, abc.Sequence) and not isinstance(data, (str, bytes)):
        converted = [default_convert(d) for d in data]
        try:
            if isinstance(data, abc.MutableSequence):
                clone = copy.copy(data)
                for i, value in enumerate(converted):
                    clone[i] = value
                return clone
            return type(data)(converted)
        except TypeError:
            return converted
    return data
