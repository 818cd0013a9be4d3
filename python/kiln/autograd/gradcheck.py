"""Finite-difference checks of autograd gradients (use float64 inputs)."""

import numpy as np

from kiln import _C


def _as_tuple(x):
    return (x,) if isinstance(x, _C.Tensor) else tuple(x)


def _flat_outputs(fn, inputs):
    return [o for o in _as_tuple(fn(*inputs)) if isinstance(o, _C.Tensor)]


def _numerical_jacobian(fn, inputs, i, eps):
    """J[k, j] = d out_flat[k] / d inputs[i]_flat[j] by central differences."""
    x = inputs[i].detach()
    on_cpu = x.device.type == "cpu"
    # On the CPU the array shares memory with the input, whatever its strides; on a
    # device it is a copy and each perturbation is written into the tensor itself.
    data = x.numpy() if on_cpu else x.cpu().numpy()

    def put(idx, value):
        if on_cpu:
            data[idx] = value
        else:
            x[idx] = float(value)

    cols = []
    with _NoGrad():
        for idx in np.ndindex(data.shape):  # row-major, like the flattened gradient
            orig = data[idx]
            put(idx, orig + eps)
            plus = _flat_values(fn, inputs)
            put(idx, orig - eps)
            minus = _flat_values(fn, inputs)
            put(idx, orig)
            cols.append((plus - minus) / (2 * eps))
    return np.stack(cols, axis=1) if cols else np.zeros((_flat_values(fn, inputs).size, 0))


def _flat_values(fn, inputs):
    outs = [o.detach().double().cpu().numpy().ravel() for o in _flat_outputs(fn, inputs)]
    return np.concatenate(outs) if outs else np.zeros(0)


def _analytical_jacobians(fn, inputs, diff_idx):
    from kiln import autograd

    outputs = _flat_outputs(fn, inputs)
    sizes = [o.numel() for o in outputs]
    total = sum(sizes)
    jacs = [np.zeros((total, inputs[i].numel())) for i in diff_idx]
    row = 0
    for o in outputs:
        if not o.requires_grad:
            row += o.numel()
            continue
        for k in range(o.numel()):
            unit = np.zeros(o.numel())
            unit[k] = 1.0
            g = _C.from_numpy(unit.reshape(tuple(o.shape))).to(o.dtype).to(o.device)
            grads = autograd.grad([o], [inputs[i] for i in diff_idx], [g], retain_graph=True,
                                  allow_unused=True)
            for j, gr in enumerate(grads):
                if gr is not None:
                    jacs[j][row + k] = gr.detach().double().cpu().numpy().ravel()
        row += o.numel()
    return jacs


class _NoGrad:
    def __enter__(self):
        self._prev = _C.is_grad_enabled()
        _C._set_grad_enabled(False)

    def __exit__(self, *exc):
        _C._set_grad_enabled(self._prev)


def gradcheck(func, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, **_ignored):
    """Compares analytical gradients of `func` at `inputs` with finite differences."""
    inputs = _as_tuple(inputs)
    diff_idx = [i for i, x in enumerate(inputs) if isinstance(x, _C.Tensor) and x.requires_grad]
    for i in diff_idx:
        if inputs[i].dtype != _C.float64:
            import warnings

            warnings.warn(f"[gradcheck] input {i} is {inputs[i].dtype}, not float64; "
                          "finite differences will be imprecise")
    analytical = _analytical_jacobians(func, inputs, diff_idx)
    for j, i in enumerate(diff_idx):
        numerical = _numerical_jacobian(func, inputs, i, eps)
        a = analytical[j]
        if numerical.shape != a.shape or not np.allclose(a, numerical, atol=atol, rtol=rtol):
            if not raise_exception:
                return False
            raise GradcheckError(
                f"Jacobian mismatch with respect to input {i},\n"
                f"numerical:{numerical}\nanalytical:{a}\n")
    return True


def gradgradcheck(func, inputs, grad_outputs=None, eps=1e-6, atol=1e-5, rtol=1e-3,
                  raise_exception=True, **_ignored):
    """gradcheck of the gradient: checks double backward."""
    from kiln import autograd

    inputs = _as_tuple(inputs)
    outputs = _flat_outputs(func, inputs)
    if grad_outputs is None:
        from kiln import randn_like

        grad_outputs = [randn_like(o).requires_grad_() for o in outputs]
    grad_outputs = list(_as_tuple(grad_outputs))
    diff_idx = [i for i, x in enumerate(inputs) if isinstance(x, _C.Tensor) and x.requires_grad]
    n = len(inputs)

    def first_grads(*args):
        ins, gos = args[:n], args[n:]
        # Finite differences call this with grad mode off; the first gradient needs it on.
        with autograd.enable_grad():
            outs = _flat_outputs(func, ins)
            gs = autograd.grad(outs, [ins[i] for i in diff_idx], list(gos), create_graph=True,
                               allow_unused=True)
        return tuple(g for g in gs if g is not None)

    return gradcheck(first_grads, tuple(inputs) + tuple(grad_outputs), eps=eps, atol=atol,
                     rtol=rtol, raise_exception=raise_exception)


class GradcheckError(RuntimeError):
    pass
