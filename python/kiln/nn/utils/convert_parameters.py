"""Flatten parameters into one vector and write one back (torch.nn.utils semantics)."""

import kiln


def _check_tensor(value, name):
    if not isinstance(value, kiln.Tensor):
        raise TypeError(f"[{name}] expected a kiln.Tensor, got {type(value).__name__}")


def parameters_to_vector(parameters):
    """One 1-D tensor holding every parameter's elements in order (differentiable)."""
    return kiln.cat([p.reshape(-1) for p in parameters])


def vector_to_parameters(vec, parameters):
    """Copy consecutive slices of vec into the parameters' data, in order."""
    _check_tensor(vec, "vector_to_parameters")
    parameters = list(parameters)
    needed = sum(p.numel() for p in parameters)
    if vec.dim() != 1 or vec.numel() < needed:  # extra elements are ignored, as in PyTorch
        raise ValueError(
            f"[vector_to_parameters] expected a 1-D vector of at least {needed} elements for "
            f"{len(parameters)} parameters, got shape {list(vec.shape)}"
        )
    offset = 0
    for p in parameters:
        n = p.numel()
        p.data = vec[offset : offset + n].view_as(p).data
        offset += n
