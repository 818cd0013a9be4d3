"""conv2d forward + backward (input, weight and bias gradients) against PyTorch."""

import kiln
import numpy as np

from benchmarks.harness import Case

DESCRIPTION = "conv2d forward+backward vs PyTorch (float32)"


def _conv_case(torch, n, c, hw, out_channels):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, hw, hw), dtype=np.float32)
    w = rng.standard_normal((out_channels, c, 3, 3), dtype=np.float32)
    b = rng.standard_normal(out_channels, dtype=np.float32)
    kx, kw, kb = (kiln.tensor(a, requires_grad=True) for a in (x, w, b))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))

    def run_kiln():
        kiln.conv2d(kx, kw, kb, padding=1).sum().backward()

    def run_torch():
        torch.nn.functional.conv2d(tx, tw, tb, padding=1).sum().backward()

    return Case(f"conv2d fwd+bwd ({n}, {c}, {hw}, {hw}) x {out_channels} 3x3", run_kiln,
                run_torch, "torch", target=("<=", 1.5), threaded=True)


def cases():
    import torch

    return [_conv_case(torch, 64, 3, 32, 32), _conv_case(torch, 64, 32, 16, 64)]
