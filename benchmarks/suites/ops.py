"""Core op speed: per-call overhead of small ops and autograd against PyTorch,
GEMM throughput against NumPy (the Foundation issue's targets)."""

import kiln
import numpy as np

from benchmarks.harness import Case

DESCRIPTION = "small ops and backward vs PyTorch, float32 GEMM vs NumPy"


def _small_op_cases(torch):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(100, dtype=np.float32), rng.standard_normal(100, dtype=np.float32)
    ka, kb = kiln.tensor(x), kiln.tensor(y)
    ta, tb = torch.tensor(x), torch.tensor(y)
    kg, tg = kiln.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)

    def kiln_backward():
        (kg * kb).sum().backward()

    def torch_backward():
        (tg * tb).sum().backward()

    m = rng.standard_normal((2, 64, 64), dtype=np.float32)
    km0, km1 = kiln.tensor(m[0]), kiln.tensor(m[1])
    tm0, tm1 = torch.tensor(m[0]), torch.tensor(m[1])
    le = ("<=", 1.0)
    return [
        Case("a + b (100 float32)", lambda: ka + kb, lambda: ta + tb, "torch", target=le),
        Case("a * b (100 float32)", lambda: ka * kb, lambda: ta * tb, "torch", target=le),
        Case("(a * b).sum().backward() (100)", kiln_backward, torch_backward, "torch", target=le),
        Case("a @ b (64x64 float32)", lambda: km0 @ km1, lambda: tm0 @ tm1, "torch", target=le,
             threaded=True),
    ]


def _gemm_cases():
    cases = []
    rng = np.random.default_rng(1)
    for n in (256, 1024, 2048):
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        ka, kb = kiln.tensor(a), kiln.tensor(b)
        cases.append(Case(f"GEMM {n}x{n} float32", (lambda ka=ka, kb=kb: ka @ kb),
                          (lambda a=a, b=b: a @ b), "numpy", flops=2.0 * n**3,
                          target=(">=", 0.95), threaded=True))
    return cases


def cases():
    import torch

    return _small_op_cases(torch) + _gemm_cases()
