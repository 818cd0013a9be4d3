"""Activation functions, composed from kiln's elementwise and reduction ops."""

import kiln
from kiln.amp._policy import op_policy

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _apply(fn, input, inplace):
    """fn(input), or with inplace=True written back into input (PyTorch's `inplace` flag).
    fn reads a clone so that its saved tensors are not the ones being overwritten."""
    if not inplace:
        return fn(input)
    out = fn(input.clone())
    input.copy_(out)
    return input


def relu(input, inplace=False):
    return kiln.relu_(input) if inplace else kiln.relu(input)


def relu6(input, inplace=False):
    return hardtanh(input, 0.0, 6.0, inplace)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    return _apply(lambda x: kiln.clamp(x, min_val, max_val), input, inplace)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    return _apply(lambda x: kiln.where(x > 0, x, x * negative_slope), input, inplace)


@op_policy(cpu="lower", cuda="lower")
def prelu(input, weight):
    # weight has one entry per channel (dim 1) or a single entry.
    if weight.numel() != 1 and input.dim() > 1:
        shape = [1] * input.dim()
        shape[1] = weight.numel()
        weight = weight.reshape(shape)
    return kiln.where(input > 0, input, input * weight)


@op_policy(cuda="keep")
def elu(input, alpha=1.0, inplace=False):
    # expm1 of min(x, 0) keeps the unused branch finite for large positive x.
    return _apply(
        lambda x: kiln.where(x > 0, x, kiln.expm1(kiln.clamp_max(x, 0.0)) * alpha), input, inplace
    )


@op_policy(cuda="keep")
def selu(input, inplace=False):
    return _apply(lambda x: elu(x, _SELU_ALPHA) * _SELU_SCALE, input, inplace)


def gelu(input, approximate="none"):
    return kiln.gelu(input, approximate=approximate)


def silu(input, inplace=False):
    return kiln.silu_(input) if inplace else kiln.silu(input)


def softplus(input, beta=1.0, threshold=20.0):
    return kiln.softplus(input, beta, threshold)


@op_policy(cuda="keep")
def mish(input, inplace=False):
    return _apply(lambda x: x * kiln.tanh(kiln.softplus(x)), input, inplace)


def tanh(input):
    return kiln.tanh(input)


def sigmoid(input):
    return kiln.sigmoid(input)


def hardsigmoid(input, inplace=False):
    return _apply(lambda x: kiln.clamp(x / 6.0 + 0.5, 0.0, 1.0), input, inplace)


def hardswish(input, inplace=False):
    return _apply(lambda x: x * kiln.clamp(x + 3.0, 0.0, 6.0) / 6.0, input, inplace)


@op_policy(cuda="keep")
def logsigmoid(input):
    return -kiln.softplus(-input)


def _softmax_dim(ndim):
    # PyTorch's legacy implicit-dim rule.
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    if dim is None:
        dim = _softmax_dim(input.dim())
    return kiln.softmax(input, dim, dtype=dtype)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    if dim is None:
        dim = _softmax_dim(input.dim())
    return kiln.log_softmax(input, dim, dtype=dtype)
