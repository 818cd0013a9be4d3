"""Where a GPU training step spends its time, kiln next to PyTorch: the top CUDA
kernels of a few steps of the gpu benchmark suite's models, recorded by PyTorch's
profiler (CUPTI sees every kernel of the process, kiln's included).

On the GPU machine, after `tools/gpu-session build`:
    PYTHONPATH=python:/tmp/kiln-site:. python3 tools/gpu-profile.py [cnn|transformer|mlp] [--amp] [--api]

--api also lists the host's CUDA API calls per step (the profiler sees kiln's too): time
the host spends in cudaMallocAsync, blocking copies and synchronizations, where a step's
wall time exceeds its GPU busy time.
"""

import argparse
import time

import kiln
import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.suites.gpu import TRAIN_STEPS, train_batch
from benchmarks.suites.train import paired_steps

MODELS = {key: (build, optimizer, shape) for key, _, build, optimizer, shape in TRAIN_STEPS}


def timed(step, sync, rounds=5):
    step()
    sync()
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        step()
        sync()
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def show(name, step, sync, rows):
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(2):
            step()
        sync()
    events = [e for e in prof.key_averages() if e.device_time_total > 0]
    events.sort(key=lambda e: -e.device_time_total)
    total = sum(e.device_time_total for e in events) / 2
    print(f"\n== {name}: GPU busy {total / 1e3:.2f} ms per step; top kernels (us per step)")
    for e in events[:rows]:
        print(f"{e.device_time_total / 2:10.0f}  x{e.count // 2:<4d} {e.key[:150]}")


def show_api(name, step, sync, rows, steps=5):
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        sync()
    calls = [e for e in prof.key_averages() if e.device_time_total == 0 and e.key.startswith("cu")]
    calls.sort(key=lambda e: -e.cpu_time_total)
    print(f"\n== {name}: host CUDA API calls per step (us, count)")
    for e in calls[:rows]:
        print(f"{e.cpu_time_total / steps:10.1f}  x{e.count / steps:<5.1f} {e.key[:100]}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("models", nargs="*", default=list(MODELS))
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast")
    p.add_argument("--rows", type=int, default=25)
    p.add_argument("--api", action="store_true", help="also list host CUDA API calls per step")
    args = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = kiln.backends.cuda.matmul.allow_tf32 = True
    for name in args.models:
        build, optimizer, shape = MODELS[name]
        x, y = train_batch(shape, np.random.default_rng(0))
        kstep, tstep = paired_steps(torch, build, optimizer, x, y, "cuda", args.amp)
        kt = timed(kstep, kiln.cuda.synchronize)
        tt = timed(tstep, torch.cuda.synchronize)
        print(f"\n#### {name}{' bf16 autocast' if args.amp else ''}: kiln {kt:.2f} ms, "
              f"torch {tt:.2f} ms per step (best of 5)")
        show(f"kiln {name}", kstep, kiln.cuda.synchronize, args.rows)
        show(f"torch {name}", tstep, torch.cuda.synchronize, args.rows // 2)
        if args.api:
            show_api(f"kiln {name}", kstep, kiln.cuda.synchronize, args.rows // 2)
            show_api(f"torch {name}", tstep, torch.cuda.synchronize, args.rows // 2)


if __name__ == "__main__":
    main()
