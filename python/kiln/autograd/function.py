"""kiln.autograd.Function: user-defined ops with a Python backward, as in PyTorch."""

from kiln import _C


class FunctionCtx:
    """The `ctx` passed to forward/backward: save tensors and attributes on it."""

    def __init__(self, name="Function"):
        self._saved = ()
        self._name = name
        self.needs_input_grad = ()
        self._non_differentiable = set()
        self._materialize_grads = True

    def save_for_backward(self, *tensors):
        for t in tensors:
            if t is not None and not isinstance(t, _C.Tensor):
                raise TypeError(
                    f"[save_for_backward] expected tensors or None, got {type(t).__name__}")
        self._saved = tuple((t, None if t is None else t._version) for t in tensors)

    @property
    def saved_tensors(self):
        """The saved tensors; raises if one was modified in place since it was saved."""
        for t, version in self._saved:
            if t is not None and t._version != version:
                raise RuntimeError(
                    "one of the variables needed for gradient computation has been modified by "
                    f"an inplace operation: [{t.dtype!r} {list(t.shape)}] is at version "
                    f"{t._version}; expected version {version} instead (saved by "
                    f"{self._name})")
        return tuple(t for t, _ in self._saved)

    def mark_non_differentiable(self, *tensors):
        self._non_differentiable.update(id(t) for t in tensors)

    def set_materialize_grads(self, value):
        self._materialize_grads = bool(value)


class _FunctionMeta(type):
    def __init__(cls, name, bases, attrs):
        super().__init__(name, bases, attrs)
        cls._backward_name = f"{name}Backward"


class Function(metaclass=_FunctionMeta):
    """Subclass with static forward(ctx, *args) and backward(ctx, *grads); call Cls.apply(...)."""

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("[Function] subclasses must implement forward")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("[Function] subclasses must implement backward")

    @classmethod
    def apply(cls, *args, **kwargs):
        ctx = FunctionCtx(cls._backward_name)
        tensor_args = [(i, a) for i, a in enumerate(args) if isinstance(a, _C.Tensor)]
        ctx.needs_input_grad = tuple(
            isinstance(a, _C.Tensor) and a.requires_grad for a in args)
        with _no_grad():
            outputs = cls.forward(ctx, *args, **kwargs)
        single = isinstance(outputs, _C.Tensor)
        outs = (outputs,) if single else tuple(outputs)
        if not (_C.is_grad_enabled() and any(ctx.needs_input_grad)):
            return outputs
        # Outputs that alias an input get a fresh handle so the input keeps its own history.
        input_ids = {id(a) for _, a in tensor_args}
        outs = tuple(o.detach() if isinstance(o, _C.Tensor) and id(o) in input_ids else o
                     for o in outs)
        diff_pos = [k for k, o in enumerate(outs) if isinstance(o, _C.Tensor)
                    and id(o) not in ctx._non_differentiable and o.dtype.is_floating_point]
        diff_outs = [outs[k] for k in diff_pos]
        inputs = [a for _, a in tensor_args]
        positions = [i for i, _ in tensor_args]

        def backward(*grads):
            # One gradient per forward output; outputs that aren't differentiable get None.
            all_grads = [None] * len(outs)
            for k, g in zip(diff_pos, grads):
                all_grads[k] = g
            result = cls.backward(ctx, *all_grads)
            if not isinstance(result, tuple):
                result = (result,)
            if len(result) != len(args):
                raise RuntimeError(
                    f"function {cls._backward_name} returned an incorrect number of gradients "
                    f"(expected {len(args)}, got {len(result)})")
            return tuple(result[i] for i in positions)

        _C._record_python_function(cls._backward_name, inputs, diff_outs, backward,
                                   ctx._materialize_grads)
        return outs[0] if single else outs


class _no_grad:
    def __enter__(self):
        self._prev = _C.is_grad_enabled()
        _C._set_grad_enabled(False)

    def __exit__(self, *exc):
        _C._set_grad_enabled(self._prev)


def once_differentiable(backward):
    """Decorates a Function's backward that is not itself differentiable: it runs under
    no_grad, so double backward through it sees no graph (and raises)."""
    import functools

    @functools.wraps(backward)
    def wrapper(ctx, *grads):
        with _no_grad():
            return backward(ctx, *grads)

    return wrapper
