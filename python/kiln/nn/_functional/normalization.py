"""Normalization functionals: thin wrappers over the fused kiln ops with torch's signatures."""

import kiln


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    return kiln.layer_norm(input, normalized_shape, weight, bias, eps)


def rms_norm(input, normalized_shape, weight=None, eps=None):
    return kiln.rms_norm(input, normalized_shape, weight, eps)


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    return kiln.group_norm(input, num_groups, weight, bias, eps)


def batch_norm(
    input,
    running_mean,
    running_var,
    weight=None,
    bias=None,
    training=False,
    momentum=0.1,
    eps=1e-5,
):
    """In training mode uses batch statistics and, when given, blends them into
    running_mean/running_var in place (running = (1 - momentum) * running + momentum * batch)."""
    return kiln.batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)
