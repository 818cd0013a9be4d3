"""RemovableHandle: what register_*_hook returns; handle.remove() unregisters the hook."""

import itertools
import weakref


class RemovableHandle:
    """Removes one hook from the dict(s) it was registered in; also a context manager."""

    _next_id = itertools.count()

    def __init__(self, hooks_dict, *, extra_dict=None):
        self.id = next(RemovableHandle._next_id)
        self._dicts = [
            weakref.ref(d)
            for d in (
                [hooks_dict]
                + list(
                    extra_dict
                    if isinstance(extra_dict, (list, tuple))
                    else []
                    if extra_dict is None
                    else [extra_dict]
                )
            )
        ]

    def remove(self):
        for ref in self._dicts:
            d = ref()
            if d is not None:
                d.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
