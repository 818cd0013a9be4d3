"""Mixed precision: what autocast costs small ops when it is off (one thread-local
test per op) and when it is on (the casts, the weight-cast cache), and a bf16
autocast + GradScaler training step, against PyTorch."""

import kiln
import numpy as np

from benchmarks.harness import Case

DESCRIPTION = "autocast off/on per-op overhead and an autocast + GradScaler step vs PyTorch"


def _linear_cases(torch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 16), dtype=np.float32)
    w = rng.standard_normal((16, 16), dtype=np.float32)
    b = rng.standard_normal(16, dtype=np.float32)
    kx, kw, kb = kiln.tensor(x), kiln.tensor(w, requires_grad=True), kiln.tensor(b)
    tx, tw, tb = torch.tensor(x), torch.tensor(w, requires_grad=True), torch.tensor(b)
    kF, tF = kiln.nn.functional, torch.nn.functional

    def kiln_loop():
        for _ in range(1000):
            kF.linear(kx, kw, kb)

    def torch_loop():
        for _ in range(1000):
            tF.linear(tx, tw, tb)

    def kiln_autocast():
        with kiln.autocast("cpu"):
            for _ in range(1000):
                kF.linear(kx, kw, kb)

    def torch_autocast():
        with torch.autocast("cpu"):
            for _ in range(1000):
                tF.linear(tx, tw, tb)

    le = ("<=", 1.0)
    return [
        Case("1000x linear 8x16x16, autocast off", kiln_loop, torch_loop, "torch", target=le),
        Case(
            "1000x linear 8x16x16, autocast('cpu') on",
            kiln_autocast,
            torch_autocast,
            "torch",
            target=le,
        ),
    ]


def _step_case(torch):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 256), dtype=np.float32)
    y = rng.integers(0, 10, 64)

    def build(lib):
        nn = lib.nn
        model = nn.Sequential(
            nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)
        )
        opt = lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        scaler = lib.amp.GradScaler("cpu")
        xs, ys = lib.tensor(x), lib.tensor(y)

        def step():
            opt.zero_grad()
            with lib.autocast("cpu", dtype=lib.bfloat16):
                loss = lib.nn.functional.cross_entropy(model(xs), ys)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()

        return step

    return [
        Case(
            "MLP 256-512-512-10 step, bf16 autocast + GradScaler",
            build(kiln),
            build(torch),
            "torch",
            target=("<=", 1.0),
            threaded=True,
        )
    ]


def cases():
    import torch

    return _linear_cases(torch) + _step_case(torch)
