"""conv2d forward + backward (input, weight and bias gradients) against PyTorch, the
two convolutions of the CNN training step (the first one's input needs no gradient),
and max_pool2d(2) forward + backward."""

import kiln
import numpy as np

from benchmarks.harness import Case

DESCRIPTION = "conv2d and max_pool2d forward+backward vs PyTorch (float32)"


def _conv_case(torch, n, c, hw, out_channels, input_grad=True):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, hw, hw), dtype=np.float32)
    w = rng.standard_normal((out_channels, c, 3, 3), dtype=np.float32)
    b = rng.standard_normal(out_channels, dtype=np.float32)
    kx = kiln.tensor(x, requires_grad=input_grad)
    tx = torch.tensor(x, requires_grad=input_grad)
    kw, kb = (kiln.tensor(a, requires_grad=True) for a in (w, b))
    tw, tb = (torch.tensor(a, requires_grad=True) for a in (w, b))

    def run_kiln():
        kiln.conv2d(kx, kw, kb, padding=1).sum().backward()

    def run_torch():
        torch.nn.functional.conv2d(tx, tw, tb, padding=1).sum().backward()

    grads = "" if input_grad else ", no input grad"
    return Case(f"conv2d fwd+bwd ({n}, {c}, {hw}, {hw}) x {out_channels} 3x3{grads}", run_kiln,
                run_torch, "torch", target=("<=", 1.5), threaded=True)


def _pool_case(torch, shape):
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    kx, tx = kiln.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)

    def run_kiln():
        kiln.max_pool2d(kx, 2).sum().backward()

    def run_torch():
        torch.nn.functional.max_pool2d(tx, 2).sum().backward()

    return Case(f"max_pool2d(2) fwd+bwd {shape}", run_kiln, run_torch, "torch",
                target=("<=", 1.0), threaded=True)


def cases():
    import torch

    return [_conv_case(torch, 64, 3, 32, 32), _conv_case(torch, 64, 3, 32, 32, input_grad=False),
            _conv_case(torch, 64, 32, 16, 64), _pool_case(torch, (64, 32, 32, 32)),
            _pool_case(torch, (64, 64, 16, 16))]
