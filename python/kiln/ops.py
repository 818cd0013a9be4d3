"""Ops registered by C++/CUDA extensions: ``kiln.ops.<namespace>.<op>(...)``.

An extension defines ops in a ``KILN_LIBRARY(namespace, m) { m.def("op", kernel)... }``
block (``kiln/library.h``); loading its shared library (``load_library`` or
``kiln.utils.cpp_extension.load``) registers them with kiln's one dispatcher.
"""

import ctypes
import os
import threading
import types

from kiln import _C

__all__ = ["load_library"]

_lock = threading.Lock()
_loaded = {}  # real path of a loaded library -> qualified names it defined


class _OpNamespace(types.ModuleType):
    """``kiln.ops.<namespace>``: its ops are looked up in the registry on first use."""

    def __init__(self, name):
        super().__init__(f"kiln.ops.{name}")
        self._namespace = name

    def _op_names(self):
        prefix = self._namespace + "::"
        names = [q[len(prefix):] for q in _C._library_definitions() if q.startswith(prefix)]
        return sorted(set(names))

    def __getattr__(self, op):
        if op.startswith("__"):
            raise AttributeError(op)
        fn = _C._library_op(f"{self._namespace}::{op}")
        if fn is None:
            known = ", ".join(self._op_names()) or "none; is its extension loaded?"
            raise AttributeError(
                f"kiln.ops.{self._namespace} has no op '{op}' (registered: {known})")
        setattr(self, op, fn)  # the definition's address is stable, even across reloads
        return fn

    def __dir__(self):
        return self._op_names()


def __getattr__(namespace):
    if namespace.startswith("__"):
        raise AttributeError(namespace)
    ns = _OpNamespace(namespace)
    globals()[namespace] = ns
    return ns


def load_library(path):
    """Loads a shared library whose KILN_LIBRARY blocks register ops (as ``torch.ops.load_library``).

    Returns the qualified names (``"ns::op"``) the library defined. Loading the same file
    again does nothing and returns the same names.
    """
    path = os.path.realpath(path)
    with _lock:
        if path not in _loaded:
            before = len(_C._library_definitions())
            # libkiln is already in the process (kiln._C links it), so the library's
            # registrations land in the same registry.
            ctypes.CDLL(path)
            _loaded[path] = _C._library_definitions()[before:]
        return list(_loaded[path])
