"""Grad-mode context managers; each also works as a decorator. Thread-local.

`no_grad`, `enable_grad` and `inference_mode` decorate with or without
parentheses (`@kiln.no_grad` and `@kiln.no_grad()`), as in PyTorch.
"""

import functools

from kiln import _C


class _DecoratorContextManager:
    _args = ()

    def __new__(cls, *args, **kwargs):
        # Bare decorator: @no_grad gives no_grad(fn).
        if len(args) == 1 and not kwargs and callable(args[0]) and cls._bare_decorator:
            return cls()(args[0])
        return super().__new__(cls)

    _bare_decorator = True

    def __call__(self, fn):
        args = self._args

        @functools.wraps(fn)
        def wrapper(*a, **kw):
            with self.__class__(*args):
                return fn(*a, **kw)

        return wrapper


class _GradModeSetter(_DecoratorContextManager):
    """Sets grad mode to `_mode` inside the block and restores the previous mode after."""

    _mode = True

    def __enter__(self):
        self._prev = _C.is_grad_enabled()
        _C._set_grad_enabled(self._mode)

    def __exit__(self, *exc):
        _C._set_grad_enabled(self._prev)


class no_grad(_GradModeSetter):
    """Disables gradient recording inside the block."""

    _mode = False


class enable_grad(_GradModeSetter):
    """Enables gradient recording inside the block (e.g. within no_grad)."""

    _mode = True


class set_grad_enabled(_DecoratorContextManager):
    """set_grad_enabled(mode): sets grad mode now; as a context or decorator, restores it after."""

    _bare_decorator = False

    def __init__(self, mode):
        self._args = (mode,)
        self._prev = _C.is_grad_enabled()
        _C._set_grad_enabled(bool(mode))

    def __call__(self, fn):
        _C._set_grad_enabled(self._prev)  # decorating must not change the current mode
        return super().__call__(fn)

    def __enter__(self):
        pass

    def __exit__(self, *exc):
        _C._set_grad_enabled(self._prev)


class inference_mode(_DecoratorContextManager):
    """Like no_grad, for code that will never need gradients (inference_mode(False) undoes it)."""

    def __init__(self, mode=True):
        self._args = (mode,)
        self._mode = bool(mode)

    def __enter__(self):
        self._prev = (_C.is_grad_enabled(), _C.is_inference_mode_enabled())
        _C._set_inference_mode(self._mode)
        _C._set_grad_enabled(False if self._mode else self._prev[0])

    def __exit__(self, *exc):
        _C._set_grad_enabled(self._prev[0])
        _C._set_inference_mode(self._prev[1])


def is_inference_mode_enabled():
    return _C.is_inference_mode_enabled()
