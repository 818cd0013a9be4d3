"""kiln.autograd: reverse-mode automatic differentiation (the engine is C++)."""

from kiln import _C
from kiln.autograd.grad_mode import (  # noqa: F401
    no_grad,
    enable_grad,
    set_grad_enabled,
    inference_mode,
    is_inference_mode_enabled,
)
from kiln.autograd.anomaly_mode import detect_anomaly, set_detect_anomaly  # noqa: F401
from kiln.autograd.function import Function, FunctionCtx  # noqa: F401
from kiln.autograd.gradcheck import gradcheck, gradgradcheck  # noqa: F401

Node = _C.Node


def _as_list(x):
    if x is None:
        return []
    if isinstance(x, _C.Tensor):
        return [x]
    return list(x)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulates gradients of `tensors` into the .grad of the leaves they depend on."""
    tensors = _as_list(tensors)
    grads = _as_list(grad_tensors) if grad_tensors is not None else [None] * len(tensors)
    if len(grads) != len(tensors):
        raise ValueError(f"[backward] got {len(tensors)} tensors and {len(grads)} gradients")
    if retain_graph is None:
        retain_graph = create_graph
    if inputs is not None:
        inputs = _as_list(inputs)
        results = _C._run_backward(tensors, grads, retain_graph, create_graph, inputs, True)
        for t, g in zip(inputs, results):
            if g is None:
                continue
            if not create_graph:
                g = g.detach()
            if t.grad is not None:
                t.grad = t.grad + g
            else:  # .grad owns its memory (the engine's gradient may be a view or shared)
                t.grad = g.contiguous() if create_graph else g.clone()
        return
    _C._run_backward(tensors, grads, retain_graph, create_graph, [], False)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=None, materialize_grads=False):
    """Gradients of `outputs` w.r.t. `inputs`, returned as a tuple; .grad is left alone."""
    outputs = _as_list(outputs)
    inputs = _as_list(inputs)
    grads = _as_list(grad_outputs) if grad_outputs is not None else [None] * len(outputs)
    if len(grads) != len(outputs):
        raise ValueError(
            f"[autograd.grad] got {len(outputs)} outputs and {len(grads)} grad_outputs")
    if retain_graph is None:
        retain_graph = create_graph
    if allow_unused is None:
        allow_unused = materialize_grads
    result = _C._run_backward(outputs, grads, retain_graph, create_graph, inputs, allow_unused)
    if materialize_grads:
        from kiln import zeros_like

        result = [zeros_like(i) if g is None else g for g, i in zip(result, inputs)]
    return tuple(result)


__all__ = ["backward", "grad", "Function", "FunctionCtx", "gradcheck", "gradgradcheck",
           "no_grad", "enable_grad", "set_grad_enabled", "inference_mode",
           "detect_anomaly", "set_detect_anomaly", "Node"]
