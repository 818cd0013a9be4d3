"""Core op speed: per-call overhead of small ops and autograd against PyTorch,
GEMM throughput against NumPy (the Foundation issue's targets), and the big
float32 kernels of a training step (transcendentals, softmax, layer_norm,
cross_entropy, self-attention) against PyTorch."""

import kiln
import numpy as np

from benchmarks.harness import Case

DESCRIPTION = "small ops and backward vs PyTorch, float32 GEMM vs NumPy, big kernels vs PyTorch"


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


def _kernel_cases(torch):
    """float32 kernels on large inputs: 1000x1000 elementwise, 4096x1000 logits."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1000, 1000), dtype=np.float32)
    kx, tx = kiln.tensor(x), torch.tensor(x)
    kpos, tpos = kiln.tensor(np.abs(x) + 0.1), torch.tensor(np.abs(x) + 0.1)
    cases = [Case(f"{name} (1000x1000)", (lambda f=getattr(kiln, name): f(kx)),
                  (lambda f=getattr(torch, name): f(tx)), "torch", threaded=True)
             for name in ("exp", "tanh", "sigmoid")]
    cases.append(Case("log (1000x1000)", lambda: kiln.log(kpos), lambda: torch.log(tpos), "torch",
                      threaded=True))
    logits = rng.standard_normal((4096, 1000), dtype=np.float32)
    target = rng.integers(0, 1000, 4096)
    kl, tl = kiln.tensor(logits), torch.tensor(logits)
    kt, tt = kiln.tensor(target), torch.tensor(target)
    klg, tlg = kiln.tensor(logits, requires_grad=True), torch.tensor(logits, requires_grad=True)
    kF, tF = kiln.nn.functional, torch.nn.functional
    cases += [
        Case("softmax (4096x1000, dim 1)", lambda: kiln.softmax(kl, 1),
             lambda: torch.softmax(tl, 1), "torch", threaded=True),
        Case("layer_norm (4096x1000)", lambda: kF.layer_norm(kl, (1000,)),
             lambda: tF.layer_norm(tl, (1000,)), "torch", threaded=True),
        Case("cross_entropy (4096x1000)", lambda: kF.cross_entropy(kl, kt),
             lambda: tF.cross_entropy(tl, tt), "torch", target=("<=", 1.0), threaded=True),
        Case("cross_entropy fwd+bwd (4096x1000)",
             lambda: kF.cross_entropy(klg, kt).backward(),
             lambda: tF.cross_entropy(tlg, tt).backward(), "torch", target=("<=", 1.0),
             threaded=True),
        _attention_case(torch, rng),
    ]
    return cases


def _attention_case(torch, rng):
    """Self-attention's forward and backward, (N, L, E) = (2, 512, 512), 8 heads of 64:
    matmuls of heads that are strided views of the projections."""
    x = rng.standard_normal((2, 512, 512), dtype=np.float32)

    def step(module, inp):
        def run():
            out, _ = module(inp, inp, inp, need_weights=False)
            out.sum().backward()
        return run

    kmha = kiln.nn.MultiheadAttention(512, 8, batch_first=True)
    tmha = torch.nn.MultiheadAttention(512, 8, batch_first=True)
    return Case("MultiheadAttention fwd+bwd (2, 512, 512), 8 heads",
                step(kmha, kiln.tensor(x)), step(tmha, torch.tensor(x)), "torch",
                target=("<=", 1.0), threaded=True)


def cases():
    import torch

    return _small_op_cases(torch) + _gemm_cases() + _kernel_cases(torch)
