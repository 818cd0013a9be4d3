"""Running a module's forward hooks and full backward hooks around forward().

Note [Full backward hooks]: the module's tensor inputs and outputs pass through
identity autograd Functions. The output one sees grad_output (and runs the
backward pre-hooks); the input one, which runs after every grad inside the
module is known, calls hook(module, grad_input, grad_output) once per backward.
When no input needs a grad, the output node calls the hooks with grad_input
all None.
"""

from kiln import _C
from kiln.autograd.function import Function

Tensor = _C.Tensor


class _Identity(Function):
    """Passes its tensors through; its backward hands their grads to `on_grads`."""

    @staticmethod
    def forward(ctx, on_grads, *tensors):
        ctx.on_grads = on_grads
        return tensors

    @staticmethod
    def backward(ctx, *grads):
        return (None,) + tuple(ctx.on_grads(grads))


def _needs_grad(x):
    return isinstance(x, Tensor) and x.requires_grad


class BackwardHook:
    """The state of one forward call's backward hooks (one object per call)."""

    def __init__(self, module, hooks, pre_hooks):
        self.module = module
        self.hooks = list(hooks.values())
        self.pre_hooks = list(pre_hooks.values())
        self.n_inputs = 0
        self.input_positions = []
        self.grad_output = None

    def _wrap(self, values, on_grads):
        """values with the tensors that need grad replaced by identity outputs."""
        positions = [i for i, v in enumerate(values) if _needs_grad(v)]
        if not positions or not _C.is_grad_enabled():
            return values, []
        outs = _Identity.apply(on_grads, *[values[i] for i in positions])
        values = list(values)
        for i, o in zip(positions, outs):
            values[i] = o
        return values, positions

    def setup_input_hook(self, args):
        self.n_inputs = sum(isinstance(a, Tensor) for a in args)
        tensor_index = {}
        for i, a in enumerate(args):
            if isinstance(a, Tensor):
                tensor_index[i] = len(tensor_index)
        self.tensor_index = tensor_index
        new_args, self.input_positions = self._wrap(args, self._on_input_grads)
        return tuple(new_args)

    def setup_output_hook(self, result):
        if isinstance(result, Tensor):
            values, _ = self._wrap([result], self._on_output_grads)
            return values[0]
        if isinstance(result, (tuple, list)):
            values, _ = self._wrap(list(result), self._on_output_grads)
            return type(result)(values)
        return result

    def _on_output_grads(self, grads):
        grads = tuple(grads)
        for hook in self.pre_hooks:
            out = hook(self.module, grads)
            if out is not None:
                grads = tuple(out) if isinstance(out, (tuple, list)) else (out,)
        self.grad_output = grads
        if not self.input_positions:
            self._call_hooks((None,) * self.n_inputs)
        return grads

    def _on_input_grads(self, grads):
        grad_input = [None] * self.n_inputs
        for pos, g in zip(self.input_positions, grads):
            grad_input[self.tensor_index[pos]] = g
        grad_input = self._call_hooks(tuple(grad_input))
        return tuple(grad_input[self.tensor_index[pos]] for pos in self.input_positions)

    def _call_hooks(self, grad_input):
        for hook in self.hooks:
            out = hook(self.module, grad_input, self.grad_output)
            if out is None:
                continue
            out = tuple(out) if isinstance(out, (tuple, list)) else (out,)
            if len(out) != len(grad_input):
                raise RuntimeError(
                    f"Backward hook returned an invalid number of grad_input, got {len(out)}, "
                    f"but expected {len(grad_input)}"
                )
            grad_input = out
        return grad_input


def _run_forward_hook(module, hook_id, hook, args, kwargs, result):
    if hook_id in module._forward_hooks_with_kwargs:
        return hook(module, args, kwargs, result)
    return hook(module, args, result)


def call_with_hooks(module, args, kwargs):
    """module.forward(*args, **kwargs) with its forward pre-hooks, forward hooks and
    backward hooks."""
    for hook_id, hook in list(module._forward_pre_hooks.items()):
        if hook_id in module._forward_pre_hooks_with_kwargs:
            result = hook(module, args, kwargs)
            if result is not None:
                if not (isinstance(result, tuple) and len(result) == 2):
                    raise RuntimeError(
                        "forward pre-hook must return None or a tuple of "
                        f"(new_args, new_kwargs), but got {result}."
                    )
                args, kwargs = result
        else:
            result = hook(module, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
    backward_hook = None
    if module._backward_hooks or module._backward_pre_hooks:
        backward_hook = BackwardHook(module, module._backward_hooks, module._backward_pre_hooks)
        args = backward_hook.setup_input_hook(args)
    result, called = None, set()
    try:
        result = module.forward(*args, **kwargs)
        for hook_id, hook in list(module._forward_hooks.items()):
            called.add(hook_id)
            out = _run_forward_hook(module, hook_id, hook, args, kwargs, result)
            if out is not None:
                result = out
    except Exception:
        # always_call hooks still see the failed call (their own errors are dropped so the
        # original one surfaces).
        for hook_id, hook in list(module._forward_hooks.items()):
            if hook_id in module._forward_hooks_always_called and hook_id not in called:
                try:
                    _run_forward_hook(module, hook_id, hook, args, kwargs, result)
                except Exception:  # noqa: BLE001, S110
                    pass
        raise
    if backward_hook is not None:
        result = backward_hook.setup_output_hook(result)
    return result
