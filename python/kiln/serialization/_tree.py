"""Nested Python objects <-> (tensor entries, a JSON description of the structure).

The structure is JSON in which arrays are lists, objects are tagged nodes and
everything else is itself:

    null, true, false, 12, "s", 1.5      None, bools, ints, strs, finite floats
    [...]                                a list
    {"t": "tuple", "v": [...]}           a tuple
    {"t": "dict", "v": {"k": ...}}       a dict with str keys (order kept)
    {"t": "dict", "kv": [[k, v], ...]}   a dict with other keys: int, float, bool, None
                                         (optimizer state dicts key their state by int)
    {"t": "float", "v": "nan"}           nan, inf, -inf
    {"t": "tensor", "k": name}           the kiln tensor stored as entry `name`
      + "view": [size, stride, offset]   ... an as_strided view of that (1-D) entry
      + "rg": true                       ... with requires_grad
    {"t": "ndarray", "k": name}          a NumPy array stored as entry `name`

Note [Shared storage]: tensors that share a storage (tied weights, views of one
buffer) are stored once: the span of the storage they cover is one 1-D entry
and each tensor is an as_strided view of it, so after loading they share memory
again. A tensor that shares with nothing is stored compactly (`contiguous()`),
even if it is a small view of a large buffer. NumPy arrays are always stored
separately.
"""

import math
import types

import numpy as np

from kiln import _C
from kiln.serialization import _safetensors as fmt
from kiln.serialization._convert import DTYPE_TO_KILN, numpy_to_tensor, tensor_to_numpy

MAX_DEPTH = 200
_KEY_TYPES = (str, int, float)  # (bool is an int) and None: hashable plain values
_VALID = "tensors, NumPy arrays, None, bool, int, float, str, and lists, tuples and dicts of them"


def _describe(obj):
    if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
        return "function"
    if isinstance(obj, type):
        return f"class {obj.__qualname__}"
    return f"object of type {type(obj).__module__}.{type(obj).__qualname__}"


def _storage_key(t):
    """(device, address of the storage's first byte): equal iff tensors share a storage."""
    return str(t.device), t.data_ptr() - t.storage_offset() * t.element_size()


def _extent(t):
    """[first, last + 1) element indices of the storage that `t` touches."""
    last = t.storage_offset() + sum((s - 1) * st for s, st in zip(t.shape, t.stride()))
    return t.storage_offset(), last + 1


class Encoder:
    """Walks an object once, collecting tensors; `entries()` then yields file entries."""

    def __init__(self, root_name):
        self.root_name = root_name
        self._names = set()
        self._tensors = []  # (entry name, tensor)
        self._arrays = []  # (entry name, ndarray)
        self._active = set()  # ids of containers on the current path (cycle check)

    def _name(self, path):
        base = ".".join(str(p) for p in path) or "tensor"
        if base == "__metadata__":
            base = "_" + base
        name, n = base, 1
        while name in self._names:
            name, n = f"{base}#{n}", n + 1
        self._names.add(name)
        return name

    def encode(self, obj, path=()):
        if len(path) > MAX_DEPTH:
            raise ValueError(f"{self._where(path)}: nested more than {MAX_DEPTH} levels deep")
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int):
            return int(obj)
        if isinstance(obj, float):
            return float(obj) if math.isfinite(obj) else {"t": "float", "v": repr(float(obj))}
        if isinstance(obj, np.generic) and isinstance(obj, (np.bool_, np.integer, np.floating)):
            return self.encode(obj.item(), path)
        if isinstance(obj, _C.Tensor):
            node = {"t": "tensor", "k": None}
            self._tensors.append((path, obj, node))
            return node
        if isinstance(obj, np.ndarray):
            if obj.dtype.newbyteorder("<") not in fmt.NUMPY_TO_DTYPE:
                raise TypeError(
                    f"{self._where(path)}: NumPy arrays of dtype {obj.dtype} are not storable"
                )
            name = self._name(path)
            self._arrays.append((name, obj))
            return {"t": "ndarray", "k": name}
        if isinstance(obj, (list, tuple, dict)):
            if type(obj) is not tuple and isinstance(obj, tuple):
                raise TypeError(
                    f"{self._where(path)}: {_describe(obj)} is not storable "
                    "(convert the named tuple to a tuple or dict)"
                )
            if id(obj) in self._active:
                raise ValueError(f"{self._where(path)}: the object contains itself")
            self._active.add(id(obj))
            try:
                if isinstance(obj, dict):
                    return self._encode_dict(obj, path)
                items = [self.encode(v, path + (i,)) for i, v in enumerate(obj)]
                return {"t": "tuple", "v": items} if isinstance(obj, tuple) else items
            finally:
                self._active.discard(id(obj))
        raise TypeError(
            f"{self._where(path)}: {_describe(obj)} is not storable "
            f"(kiln.save stores {_VALID}; call .state_dict() on modules)"
        )

    def _encode_dict(self, obj, path):
        for k in obj:
            if not (k is None or isinstance(k, _KEY_TYPES)):
                raise TypeError(
                    f"{self._where(path)}: dict key {k!r:.60} is not storable "
                    "(keys must be str, int, float, bool or None)"
                )
        if all(isinstance(k, str) for k in obj):
            return {"t": "dict", "v": {k: self.encode(v, path + (k,)) for k, v in obj.items()}}
        return {
            "t": "dict",
            "kv": [[self.encode(k, path), self.encode(v, path + (k,))] for k, v in obj.items()],
        }

    def _where(self, path):
        return self.root_name + "".join(f"[{p!r}]" for p in path)

    def entries(self):
        """File entries for the collected tensors; fills in their nodes."""
        out = [
            fmt.Entry(
                name,
                fmt.NUMPY_TO_DTYPE[a.dtype.newbyteorder("<")],
                a.shape,
                a.astype(a.dtype.newbyteorder("<"), copy=False),
            )
            for name, a in self._arrays
        ]
        groups = {}
        for path, t, node in self._tensors:
            if t.dtype not in DTYPE_TO_KILN.values():
                raise TypeError(f"{self._where(path)}: tensors of dtype {t.dtype} are not storable")
            if t.requires_grad:
                node["rg"] = True
            key = _storage_key(t) if t.numel() else ("empty", id(node))
            groups.setdefault(key, []).append((path, t, node))
        for members in groups.values():
            path, t, _ = members[0]
            name = self._name(path)
            if len(members) == 1:
                members[0][2]["k"] = name
                out.append(fmt.Entry(name, *entry_of(t)))
                continue
            start = min(_extent(m)[0] for _, m, _ in members)
            stop = max(_extent(m)[1] for _, m, _ in members)
            span = t.detach().as_strided([stop - start], [1], start)
            out.append(fmt.Entry(name, *entry_of(span)))
            for _, m, node in members:
                node["k"] = name
                node["view"] = [list(m.shape), list(m.stride()), m.storage_offset() - start]
        return out


def entry_of(t):
    dtype, array = tensor_to_numpy(t)
    return dtype, array.shape, array


# ---------------------------------------------------------------------- decoding


class Decoder:
    """Rebuilds an object from its structure JSON and the file's entries, checking
    every node (the structure is as untrusted as the rest of the file)."""

    def __init__(self, entries, to_device):
        self._entries = {e.name: e for e in entries}
        self._to_device = to_device
        self._tensors = {}  # entry name -> loaded base tensor
        self._arrays = {}  # entry name -> loaded NumPy array
        self._views = {}  # (name, view, requires_grad) -> tensor: one object per saved view

    def decode(self, node, depth=0):
        if depth > MAX_DEPTH:
            raise fmt.SafetensorsError(f"structure is nested more than {MAX_DEPTH} levels deep")
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.decode(v, depth + 1) for v in node]
        if not isinstance(node, dict) or not isinstance(node.get("t"), str):
            raise fmt.SafetensorsError(f"bad structure node {node!r:.80}")
        kind = node["t"]
        if kind == "dict" and isinstance(node.get("v"), dict):
            return {k: self.decode(v, depth + 1) for k, v in node["v"].items()}
        if kind == "dict" and isinstance(node.get("kv"), list):
            return dict(self._item(kv, depth + 1) for kv in node["kv"])
        if kind == "tuple" and isinstance(node.get("v"), list):
            return tuple(self.decode(v, depth + 1) for v in node["v"])
        if kind == "float" and node.get("v") in ("nan", "inf", "-inf"):
            return float(node["v"])
        if kind == "ndarray":  # one copy per entry, however often the structure names it
            entry = self._entry(node)
            if entry.name not in self._arrays:
                data = entry.data.numpy() if isinstance(entry.data, _C.Tensor) else entry.data
                self._arrays[entry.name] = np.array(data, copy=True)
            return self._arrays[entry.name]
        if kind == "tensor":
            return self._tensor(node)
        raise fmt.SafetensorsError(f"bad structure node {node!r:.80}")

    def _item(self, kv, depth):
        if not (isinstance(kv, list) and len(kv) == 2):
            raise fmt.SafetensorsError(f"bad dict item {kv!r:.80}")
        key = self.decode(kv[0], depth)
        if not (key is None or isinstance(key, _KEY_TYPES)):
            raise fmt.SafetensorsError(f"bad dict key {kv[0]!r:.80}")
        return key, self.decode(kv[1], depth)

    def _entry(self, node):
        name = node.get("k")
        if not isinstance(name, str) or name not in self._entries:
            raise fmt.SafetensorsError(f"structure refers to a missing tensor {name!r:.80}")
        return self._entries[name]

    def _tensor(self, node):
        entry = self._entry(node)
        if entry.dtype not in DTYPE_TO_KILN:
            raise fmt.SafetensorsError(
                f"tensor {entry.name!r}: dtype {entry.dtype} has no kiln equivalent"
            )
        base = self._tensors.get(entry.name)
        if base is None:
            base = self._to_device(numpy_to_tensor(entry.dtype, entry.data))
            self._tensors[entry.name] = base
        view, rg = node.get("view"), node.get("rg") is True
        if view is None:
            if rg and not base.requires_grad:
                base.requires_grad_(True)
            return base
        key = (entry.name, _check_view(view, entry), rg)
        t = self._views.get(key)
        if t is None:
            t = self._views[key] = base.as_strided(*view)
            if rg:
                t.requires_grad_(True)
        return t


def _check_view(view, entry):
    """Validate [size, stride, offset] against a 1-D entry; returns a hashable form."""

    def ints(xs):
        return (
            isinstance(xs, list)
            and len(xs) <= fmt.MAX_DIMS
            and all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2**62 for x in xs)
        )

    ok = (
        isinstance(view, list)
        and len(view) == 3
        and ints(view[0])
        and ints(view[1])
        and len(view[0]) == len(view[1])
        and ints([view[2]])
        and len(entry.shape) == 1
        and view[2] <= entry.shape[0]
    )
    if ok and all(view[0]):
        last = view[2] + sum((s - 1) * st for s, st in zip(view[0], view[1]))
        ok = last < entry.shape[0]
    if not ok:
        raise fmt.SafetensorsError(
            f"tensor {entry.name!r}: view {view!r:.80} is out of bounds or malformed"
        )
    return (tuple(view[0]), tuple(view[1]), view[2])
