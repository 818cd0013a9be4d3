"""Module-level ops (kiln.add, kiln.sum, ...): every public function of the C++ core.

Binding files define an op once with `m.def`; it appears here without a list to maintain.
"""

from kiln import _C

__all__ = []
for _name in dir(_C):
    _obj = getattr(_C, _name)
    if not _name.startswith("_") and callable(_obj) and not isinstance(_obj, type):
        globals()[_name] = _obj
        __all__.append(_name)
