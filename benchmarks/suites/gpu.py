"""The CUDA backend against PyTorch on the same GPU (the CUDA issue's targets):
elementwise bandwidth against the device-to-device copy, large matmuls in TF32 and
bfloat16, and the three training steps of the train suite scaled up to fill the GPU,
in float32 and under bfloat16 autocast. TF32 is on for both libraries from the matmul cases
on (PyTorch's convolutions use it by default). Needs a GPU and a CUDA build of PyTorch."""

import kiln
import numpy as np

from benchmarks.harness import Case
from benchmarks.suites.train import _cnn, _mlp, _transformer, step_case

DESCRIPTION = ("CUDA: add bandwidth vs D2D copy, TF32/bf16 matmul, the steps' components "
               "(heads copy, conv, attention) and training steps vs PyTorch")


def _require_gpus(torch):
    if not kiln.cuda.is_available():
        reason = kiln.cuda.is_available(explain=True).reason
        raise SystemExit(f"--suite gpu: kiln can't use CUDA: {reason}")
    if not torch.cuda.is_available():
        raise SystemExit("--suite gpu: this PyTorch has no CUDA (the reference must run on the "
                         "same GPU)")


def _synced(fn, sync):
    """Times the work, not its launch: every call waits for the GPU."""

    def run():
        fn()
        sync()

    return run


def _bandwidth_cases(torch, ksync, tsync):
    n = 1 << 28  # 1 GiB per float32 operand: far beyond L2
    a, b = kiln.ones(n, device="cuda"), kiln.full((n,), 2.0, device="cuda")
    ta, tb = torch.ones(n, device="cuda"), torch.full((n,), 2.0, device="cuda")
    dst = kiln.empty(n, device="cuda")
    add_bytes, copy_bytes = 3.0 * 4 * n, 2.0 * 4 * n
    return [
        # The target: add's bandwidth >= 85% of the copy engine's, same run.
        Case("add float32 2^28 vs kiln D2D copy", _synced(lambda: a + b, ksync),
             _synced(lambda: dst.copy_(a), ksync), "kiln copy_", bytes=add_bytes,
             reference_bytes=copy_bytes, target=(">=", 0.85)),
        Case("add float32 2^28", _synced(lambda: a + b, ksync), _synced(lambda: ta + tb, tsync),
             "torch", bytes=add_bytes, target=(">=", 0.95)),
        Case("D2D copy float32 2^28", _synced(lambda: dst.copy_(a), ksync),
             _synced(lambda: tb.copy_(ta), tsync), "torch", bytes=copy_bytes),
    ]


def _matmul_cases(torch, ksync, tsync):
    kiln.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cuda.matmul.allow_tf32 = True
    cases = []
    rng = np.random.default_rng(0)
    for n in (4096, 8192):
        x = rng.standard_normal((n, n), dtype=np.float32)
        for name, kd, td in (("TF32", kiln.float32, torch.float32),
                             ("bf16", kiln.bfloat16, torch.bfloat16)):
            ka = kiln.tensor(x, device="cuda").to(kd)
            ta = torch.tensor(x, device="cuda").to(td)
            cases.append(Case(f"matmul {n}^3 {name}", _synced(lambda ka=ka: ka @ ka, ksync),
                              _synced(lambda ta=ta: ta @ ta, tsync), "torch", flops=2.0 * n**3,
                              target=(">=", 0.95)))
    return cases


HALVES = (("float32", kiln.float32, "float32"), ("bf16", kiln.bfloat16, "bfloat16"))


def _component_cases(torch, ksync, tsync):
    """The pieces the CNN and transformer steps spend their time in, each against
    PyTorch's: the attention heads' transpose copy, the scores of head views (kiln loops
    its GEMM over the batch, PyTorch copies), a convolution layer's forward and backward
    (cuDNN), and attention's forward and backward."""
    rng = np.random.default_rng(2)
    cases = []

    def pair(arr, kd, td, grad=False):
        k = kiln.tensor(arr, device="cuda").to(kd)
        t = torch.tensor(arr, device="cuda").to(getattr(torch, td))
        return (k.requires_grad_(True), t.requires_grad_(True)) if grad else (k, t)

    def fwd_bwd(fn, *inputs):
        def run():
            fn(*inputs).sum().backward()
        return run

    heads = rng.standard_normal((16, 512, 16, 64), dtype=np.float32)
    proj = heads.reshape(16, 512, 1024)

    def scores(t):  # q @ k^T of the (N, H, L, D) head views of one (N, L, E) projection
        h = t.reshape(16, 512, 16, 64).transpose(1, 2)
        return h @ h.transpose(-2, -1)

    img = rng.standard_normal((256, 64, 32, 32), dtype=np.float32)
    w = rng.standard_normal((64, 64, 3, 3), dtype=np.float32) * 0.05
    qkv = [rng.standard_normal((16, 16, 512, 64), dtype=np.float32) for _ in range(3)]
    for name, kd, td in HALVES:
        kx, tx = pair(heads, kd, td)
        cases.append(Case(f"heads transpose copy (16,512,16,64) {name}",
                          _synced(lambda kx=kx: kx.transpose(1, 2).contiguous(), ksync),
                          _synced(lambda tx=tx: tx.transpose(1, 2).contiguous(), tsync), "torch",
                          bytes=2.0 * heads.size * kx.element_size()))
        kp, tp = pair(proj, kd, td)
        cases.append(Case(f"heads scores q @ k^T of (16,512,1024) views {name}",
                          _synced(lambda kp=kp: scores(kp), ksync),
                          _synced(lambda tp=tp: scores(tp), tsync), "torch",
                          flops=2.0 * 16 * 16 * 512 * 512 * 64))
        (ki, ti), (kw, tw) = pair(img, kd, td, True), pair(w, kd, td, True)
        cases.append(Case(f"conv2d 64->64 3x3 (256,64,32,32) fwd+bwd {name}",
                          _synced(fwd_bwd(lambda x, w: kiln.nn.functional.conv2d(x, w, padding=1),
                                          ki, kw), ksync),
                          _synced(fwd_bwd(lambda x, w: torch.nn.functional.conv2d(x, w, padding=1),
                                          ti, tw), tsync), "torch", target=("<=", 1.0)))
        kq, tq = zip(*(pair(a, kd, td, True) for a in qkv))
        cases.append(Case(f"attention (16,16,512,64) fwd+bwd {name}",
                          _synced(fwd_bwd(kiln.nn.functional.scaled_dot_product_attention, *kq),
                                  ksync),
                          _synced(fwd_bwd(torch.nn.functional.scaled_dot_product_attention, *tq),
                                  tsync), "torch", target=("<=", 1.0)))
    return cases


# The training steps of the train suite scaled up to fill the GPU:
# (key, name, build(lib), optimizer(lib, params), input shape); classes in [0, 10).
TRAIN_STEPS = [
    ("mlp", "MLP 784-4096-4096-10 step, batch 4096, Adam", lambda lib: _mlp(lib, width=4096),
     lambda lib, p: lib.optim.Adam(p, lr=1e-3), (4096, 784)),
    ("cnn", "CNN 2xconv 3x32x32 step, batch 1024, SGD momentum", _cnn,
     lambda lib, p: lib.optim.SGD(p, lr=0.01, momentum=0.9), (1024, 3, 32, 32)),
    ("transformer", "Transformer enc 8x1024 step, (16, 512, 1024), AdamW",
     lambda lib: _transformer(lib, d_model=1024, nhead=16, num_layers=8),
     lambda lib, p: lib.optim.AdamW(p, lr=1e-3), (16, 512, 1024)),
]


def train_batch(shape, rng):
    """A random float32 batch of `shape` and its int64 class labels."""
    return (rng.standard_normal(shape, dtype=np.float32),
            rng.integers(0, 10, shape[0]).astype(np.int64))


def _train_cases(torch):
    rng = np.random.default_rng(1)
    cases = []
    for _, name, build, opt, shape in TRAIN_STEPS:
        x, y = train_batch(shape, rng)
        cases += [step_case(torch, f"{name}, {'bf16 autocast' if autocast else 'float32'}",
                            build, opt, x, y, device="cuda", autocast=autocast)
                  for autocast in (False, True)]
    return cases


def cases():
    import torch

    _require_gpus(torch)
    print(f"GPU: kiln sees {kiln.cuda.get_device_name()}, torch {torch.version.cuda} sees "
          f"{torch.cuda.get_device_name()}")

    def ksync():
        kiln.cuda.synchronize()

    tsync = torch.cuda.synchronize
    return (_bandwidth_cases(torch, ksync, tsync) + _matmul_cases(torch, ksync, tsync)
            + _component_cases(torch, ksync, tsync) + _train_cases(torch))
