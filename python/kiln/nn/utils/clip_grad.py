"""Gradient clipping by total norm or by value (torch.nn.utils semantics).

The `foreach` arguments are accepted for signature compatibility; each
gradient is handled by one or two kiln ops, so there is nothing to batch.
"""

import kiln


def _as_list(tensors):
    return [tensors] if isinstance(tensors, kiln.Tensor) else list(tensors)


def _grads(parameters):
    return [p.grad for p in _as_list(parameters) if p.grad is not None]


@kiln.no_grad()
def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """The norm of all tensors together, as if they were concatenated into one vector."""
    tensors = _as_list(tensors)
    norm_type = float(norm_type)
    if not tensors:
        return kiln.tensor(0.0)
    # Norms are taken where the tensors are; across devices they meet on the first one's.
    device = tensors[0].device
    total = kiln.stack([t.norm(norm_type).to(device) for t in tensors]).norm(norm_type)
    if error_if_nonfinite and not kiln.isfinite(total).item():
        raise RuntimeError(
            f"[clip_grad_norm_] the total norm of order {norm_type} of the gradients is "
            f"{total.item()}, so it cannot be clipped; pass error_if_nonfinite=False to "
            "clip anyway"
        )
    return total


@kiln.no_grad()
def clip_grads_with_norm_(parameters, max_norm, total_norm, foreach=None):
    """Scale the gradients in place by max_norm / total_norm when that is below 1."""
    grads = _grads(parameters)
    if not grads:
        return
    # The 1e-6 keeps the ratio finite for all-zero gradients, as PyTorch does.
    scale = kiln.clamp(float(max_norm) / (total_norm + 1e-6), max=1.0)
    for g in grads:
        g.mul_(scale.to(g.device, g.dtype))


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Rescale gradients so that their total norm is at most max_norm; returns the norm before."""
    parameters = _as_list(parameters)  # may be a generator, and it is read twice
    total = get_total_norm(_grads(parameters), norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(parameters, max_norm, total, foreach)
    return total


@kiln.no_grad()
def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every gradient element into [-clip_value, clip_value] in place."""
    clip_value = float(clip_value)
    for g in _grads(parameters):
        g.clamp_(min=-clip_value, max=clip_value)
