"""Data-loading throughput: kiln.utils.data.DataLoader against torch.utils.data.DataLoader.

The issue's case (issue 4): an in-memory data set of 50,000 3x32x32 uint8
images with a per-sample transform (random crop with padding 4, horizontal
flip, convert to float, normalize), batch 128, num_workers 0 and 2. Both
loaders run the same Dataset class (the transform is NumPy code in
__getitem__, so they differ only in the loader: sampling, worker processes,
collation and the transport of batches); each collates into its own tensors.

    python -m benchmarks.data_suite [--n 50000] [--batch-size 128] [--workers 0 2] [--repeats 2] [--json out.json]

Each case runs kiln and torch alternately in this process after a warm-up;
the table shows the best of the repeats: samples per second (higher is better)
and CPU time per sample summed over the main process and the workers (lower is
better; unlike throughput it barely moves when other programs load the machine).
Every epoch is timed from ``iter(loader)`` (worker start included, as the first
batch's time shows) to the last batch; the rates of all repeats follow the table.

On a machine shared with other users' processes, the throughput with workers
mostly measures how much CPU the kernel grants this session, not the loader:
Linux schedules each session (autogroup) as one entity, and a session whose
threads wake up often gets a larger share than one whose workers compute
without pause. torch's loader has threads that wake for every batch (a feeder
thread per queue, a file-descriptor server per worker), kiln's workers do not,
so under load torch can come out ahead while using more CPU per sample.
``--waker`` shows it: during every timed epoch (both loaders alike) it runs a
process that does nothing but sleep 0.5 ms in a loop, in this session.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32).reshape(3, 1, 1)
STD = np.array([0.2470, 0.2435, 0.2616], np.float32).reshape(3, 1, 1)


class Cifar:
    """50,000 random 3x32x32 uint8 images and labels, augmented per sample in NumPy."""

    def __init__(self, n, seed=0):
        rng = np.random.default_rng(seed)
        self.images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        self.labels = rng.integers(0, 10, n, dtype=np.int64)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img = np.pad(self.images[i], ((0, 0), (4, 4), (4, 4)))
        top, left = np.random.randint(0, 9, 2)
        img = img[:, top : top + 32, left : left + 32]
        if np.random.rand() < 0.5:
            img = img[:, :, ::-1]
        img = (img.astype(np.float32) * np.float32(1 / 255) - MEAN) / STD
        return img, int(self.labels[i])


def _loaders():
    import kiln.utils.data as kd

    loaders = {"kiln": kd}
    try:
        import torch
        import torch.utils.data as td

        torch.set_num_threads(1)
        loaders["torch"] = td
    except ImportError:
        pass
    return loaders


def _make(lib, dataset, batch_size, workers):
    class DS(Cifar, lib.Dataset):
        pass

    ds = DS.__new__(DS)
    ds.images, ds.labels = dataset.images, dataset.labels
    return lib.DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers)


class _Waker:
    """A process in this session that only wakes up every 0.5 ms (--waker)."""

    def __init__(self, on):
        self.on = on

    def __enter__(self):
        if self.on:
            code = "import time\nwhile True: time.sleep(0.0005)"
            self.proc = subprocess.Popen([sys.executable, "-c", code])

    def __exit__(self, *exc):
        if self.on:
            self.proc.kill()
            self.proc.wait()


def _cpu_seconds():
    """CPU time of this process and its reaped children (the workers, joined at epoch end)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _epoch(loader, max_batches=None):
    """(samples per second, seconds to the first batch, CPU seconds) over one pass."""
    cpu = _cpu_seconds()
    start = time.perf_counter()
    first = None
    samples = 0
    for i, (x, y) in enumerate(loader):
        if first is None:
            first = time.perf_counter() - start
        samples += len(y)
        if max_batches is not None and i + 1 >= max_batches:
            break
    return samples / (time.perf_counter() - start), first, _cpu_seconds() - cpu


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="images in the data set")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument(
        "--waker",
        action="store_true",
        help="time every epoch alongside a process that only wakes up every 0.5 ms (see above)",
    )
    args = parser.parse_args(argv)

    dataset = Cifar(args.n)
    libs = _loaders()
    rows = []
    for workers in args.workers:
        loaders = {
            name: _make(lib, dataset, args.batch_size, workers) for name, lib in libs.items()
        }
        for loader in loaders.values():  # warm-up: imports, first worker start, caches
            _epoch(loader, max_batches=10)
        best, first, cpu, runs = {}, {}, {}, {}
        for rep in range(args.repeats):
            order = list(loaders.items())
            for name, loader in order if rep % 2 == 0 else order[::-1]:  # neither always goes first
                with _Waker(args.waker):
                    rate, t_first, t_cpu = _epoch(loader)
                best[name] = max(best.get(name, 0.0), rate)
                runs.setdefault(name, []).append(rate)
                first[name] = min(first.get(name, float("inf")), t_first)
                cpu[name] = min(cpu.get(name, float("inf")), t_cpu * 1e6 / args.n)
        rows.append(
            {
                "case": f"{args.n} imgs, batch {args.batch_size}, num_workers={workers}",
                "kiln": best["kiln"],
                "torch": best.get("torch"),
                "kiln_cpu_us_per_sample": cpu["kiln"],
                "torch_cpu_us_per_sample": cpu.get("torch"),
                "kiln_first_batch_s": first["kiln"],
                "torch_first_batch_s": first.get("torch"),
                "kiln_runs": runs["kiln"],
                "torch_runs": runs.get("torch"),
            }
        )

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"# {platform.processor() or platform.machine()}, {cpus} CPUs usable, Python {platform.python_version()}"
    )
    print(
        f"# samples/s: best of {args.repeats}, higher is better; ratio = kiln / torch. CPU: us of CPU time"
    )
    print(
        "# (main process + workers) per sample, lower is better; it does not depend on other load"
    )
    print(
        f"{'case':<44} {'kiln':>8} {'torch':>8} {'ratio':>6} {'CPU kiln':>9} {'CPU torch':>9} {'1st batch kiln/torch':>21}"
    )
    for r in rows:
        has = r["torch"] is not None
        print(
            f"{r['case']:<44} {r['kiln']:>8.0f} {r['torch'] if has else float('nan'):>8.0f} "
            f"{r['kiln'] / r['torch'] if has else float('nan'):>5.2f}x {r['kiln_cpu_us_per_sample']:>9.1f} "
            f"{r['torch_cpu_us_per_sample'] if has else float('nan'):>9.1f} "
            f"{r['kiln_first_batch_s']:>9.3f} / {r['torch_first_batch_s'] if has else float('nan'):.3f} s"
        )
    for r in rows:
        line = f"# {r['case']}, every repeat in order: kiln " + ", ".join(
            map("{:.0f}".format, r["kiln_runs"])
        )
        if r["torch_runs"]:
            line += "; torch " + ", ".join(map("{:.0f}".format, r["torch_runs"]))
        print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
