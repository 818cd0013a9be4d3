"""Checkpoint I/O speed: kiln.save/kiln.load against safetensors and torch.save/torch.load.

Targets (issue 5), on a ~500 MB float32 state dict: kiln.load at least as fast as
safetensors' own load, kiln.save within 1.2x of safetensors.torch.save_file.
What each does differs: kiln.save computes a checksum (CRC-32 pieces) and fsyncs the file
and its directory (safetensors does neither). kiln.load reads the data into memory
and verifies the checksum. safetensors 0.8's default "mmap" backend differs by
framework: safetensors.torch.load_file maps the file (torch's UntypedStorage.from_file,
private mapping) and reads nothing until tensors are used, while
safetensors.numpy.load_file copies each tensor out of the mapping into new memory.
So the rows compare:
- `load`: the call alone. Against safetensors.numpy (eager, like kiln) this is the
  like-for-like figure; against safetensors.torch it pits a full read against a lazy
  map, and `kiln (mmap, no verify)` is the comparable kiln row.
- `load+read`: the call, then every tensor read once (a NumPy sum over a zero-copy view
  of each tensor, the same code for every library): what a user who then uses the
  weights waits for. This is the figure the load target is judged on against
  safetensors.torch.

Note [Load target]: which figure meets it. Measured 2026-11-25 on a 2-core AMD EPYC VM
shared with other jobs (load average 7-11; a ratio moves by up to 2x between runs), four
runs of `--repeats 2`, two with `--process fresh` and two with `--process same`:
- kiln.load's default (each tensor read into its own memory by 4 threads, CRC verified)
  against the eager loaders: safetensors.numpy 1.13x and 0.76x in fresh processes,
  0.59x and 0.51x in the same process (where safetensors' allocations happen to reuse
  memory freed by earlier loads, kiln's come back from the OS and fault again);
  safetensors.torch (pread) 0.55-1.34x; torch.load 0.84-1.30x. So >= 1.0x only in some
  fresh-process runs: NOT met consistently.
- against safetensors.torch.load_file's lazy mapping, `load` cannot be met by any load
  that reads the data (0.00x), and the user-visible `load+read` is 0.11-0.30x. Only
  `mmap=True, verify_checksum=False` (the same lazy private mapping, with the same SIGBUS
  hazard if the file is truncated) meets it: `load` 1.15-1.41x (one outlier 0.30x),
  `load+read` 0.76-1.37x (1.01-1.37x in three of four runs).
- save (temp file, fsync, rename): 1.04x, 0.64x, 1.37x, 0.18x (one 1.5 s fsync stall)
  of safetensors.torch.save_file; without the fsync (file object) 0.65-1.56x. Within
  1.2x (ratio >= 0.83) in two of four runs.
The default stays eager and verified: a mapping cannot be made safe against truncation
(pages not yet copied fault with SIGBUS), and the checksum costs ~0.05 s of 500 MB.

    PYTHONPATH=python python -m benchmarks.io_suite [--mb 500] [--repeats 2]
        [--cache warm|cold] [--process same|fresh] [--json out.json]

Each case runs once as warm-up, then all libraries alternate `--repeats` times in
this process; the table shows the best time. Files live in a temporary directory
in --dir (default: the system temp dir). Before each timed load its file is read
into the page cache (--cache warm) or evicted from it (--cache cold), so that no
library is timed against a file another library's run pushed out of the cache.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np


def _state_dict(total_mb):
    """NumPy arrays shaped like a transformer's weights, about `total_mb` MB in all."""
    rng = np.random.default_rng(0)
    shapes = [(2048, 4096)] * 12 + [(1024, 1024)] * 28 + [(4096,)] * 64
    scale = total_mb * 1e6 / (sum(int(np.prod(s)) for s in shapes) * 4)
    out = {}
    for i, s in enumerate(shapes):
        if len(s) == 2:
            s = (max(1, round(s[0] * scale)), s[1])
        out[f"layers.{i}.weight" if len(s) == 2 else f"layers.{i}.bias"] = rng.random(
            s, dtype=np.float32
        )
    return out


def _machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"


def _paths(directory):
    names = {"kiln": "kiln.safetensors", "torch": "torch.pt", "st": "st.safetensors"}
    return {k: os.path.join(directory, v) for k, v in names.items()}


def _save_cases(arrays, directory):
    import kiln

    paths = _paths(directory)
    kiln_sd = {k: kiln.from_numpy(a) for k, a in arrays.items()}
    plain_path = os.path.join(directory, "kiln-plain.safetensors")

    def save_plain():  # to a file object: no temp file, fsync or rename
        with open(plain_path, "wb") as f:
            kiln.save(kiln_sd, f)

    cases = {
        "kiln": lambda: kiln.save(kiln_sd, paths["kiln"]),
        "kiln (file object, no fsync)": save_plain,
    }
    try:
        import torch
    except ImportError:
        return cases
    torch_sd = {k: torch.from_numpy(a) for k, a in arrays.items()}
    cases["torch.save"] = lambda: torch.save(torch_sd, paths["torch"])
    try:
        import safetensors.torch as st
    except ImportError:
        return cases
    cases["safetensors.torch"] = lambda: st.save_file(torch_sd, paths["st"])
    return cases


def _read_all(tensors):
    """Touches every byte, with the same code for every library."""
    return sum(
        float(np.asarray(t.numpy() if hasattr(t, "numpy") else t).sum()) for t in tensors.values()
    )


def _load_cases(directory):
    """{op: {name: (file it reads, function)}} for op in load, load+read."""
    import kiln

    paths = _paths(directory)
    k = paths["kiln"]
    loads = {
        "kiln": (k, lambda: kiln.load(k)),
        "kiln (no verify)": (k, lambda: kiln.load(k, verify_checksum=False)),
        "kiln (mmap)": (k, lambda: kiln.load(k, mmap=True)),
        "kiln (mmap, no verify)": (k, lambda: kiln.load(k, mmap=True, verify_checksum=False)),
    }
    try:
        import torch

        loads["torch.load"] = (paths["torch"], lambda: torch.load(paths["torch"]))
        import safetensors.numpy as sn
        import safetensors.torch as st

        s = paths["st"]
        loads["safetensors.torch"] = (s, lambda: st.load_file(s))
        loads["safetensors.torch (pread)"] = (s, lambda: st.load_file(s, backend="pread"))
        loads["safetensors.numpy"] = (s, lambda: sn.load_file(s))
    except ImportError:
        pass
    end_to_end = ["kiln", "kiln (mmap, no verify)", "torch.load", "safetensors.torch",
                  "safetensors.numpy"]
    return {
        "load": loads,
        "load+read": {
            n: (loads[n][0], lambda f=loads[n][1]: _read_all(f())) for n in end_to_end if n in loads
        },
    }


def _child(directory, op, name, cache):
    """--process fresh: one timed load in this new process."""
    path, fn = _load_cases(directory)[op][name]
    print(_time(fn, path, cache))


def _time_fresh(directory, op, name, cache):
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.io_suite", "--child", op, name, "--dir", directory,
         "--cache", cache],
        check=True, capture_output=True, text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    return float(out.stdout.split()[-1])


OPS = ("save", "load", "load+read")  # saves first: the loads read their files
REFERENCES = {
    "save": ["safetensors.torch", "torch.save"],
    "load": ["safetensors.torch", "safetensors.torch (pread)", "safetensors.numpy", "torch.load"],
    "load+read": ["safetensors.torch", "safetensors.numpy", "torch.load"],
}


def _set_cache(path, cache):
    """Put `path` in the page cache (read it all) or out of it (fsync, then
    POSIX_FADV_DONTNEED), so every library's load starts from the same state."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if cache == "cold":
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        else:  # read twice: pages used twice are kept over pages read once (the
            # kernel's active list), so a small page cache evicts other files first
            for _ in range(2):
                os.lseek(fd, 0, os.SEEK_SET)
                while os.read(fd, 16 << 20):
                    pass
    finally:
        os.close(fd)


def _time(fn, path=None, cache="warm"):
    if path is not None:
        _set_cache(path, cache)
    start = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - start
    del result
    return elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=500, help="state dict size in MB")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--dir", default=None, help="where to write the files")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument(
        "--cache",
        choices=["warm", "cold"],
        default="warm",
        help="before each load, read its file into the page cache (warm) or evict it (cold)",
    )
    parser.add_argument(
        "--process",
        choices=["same", "fresh"],
        default="same",
        help="time each load in this process (same) or in a new one (fresh), as a job "
        "that starts and loads a checkpoint does: no memory recycled from earlier loads",
    )
    parser.add_argument("--child", nargs=2, metavar=("OP", "NAME"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        return _child(args.dir, *args.child, args.cache)
    arrays = _state_dict(args.mb)
    nbytes = sum(a.nbytes for a in arrays.values())
    directory = tempfile.mkdtemp(prefix="kiln-io-bench-", dir=args.dir)
    rows = []
    try:
        cases = {"save": _save_cases(arrays, directory), **_load_cases(directory)}
        best = {}
        for op in OPS:
            if op == "save":
                run = {name: (lambda c=case: _time(c)) for name, case in cases[op].items()}
            elif args.process == "fresh":
                run = {
                    name: (lambda op=op, name=name: _time_fresh(directory, op, name, args.cache))
                    for name in cases[op]
                }
            else:
                run = {
                    name: (lambda c=case: _time(c[1], c[0], args.cache))
                    for name, case in cases[op].items()
                }
            for timed in run.values():  # warm-up
                timed()
            for _ in range(args.repeats):
                for name, timed in run.items():
                    t = timed()
                    best[op, name] = min(best.get((op, name), t), t)
        for op in OPS:
            for name in cases[op]:
                t = best[op, name]
                row = {"case": f"{op} {name}", "seconds": t, "MB/s": nbytes / t / 1e6}
                for ref in REFERENCES[op]:
                    if (op, ref) in best and name.startswith("kiln"):
                        # > 1 means this case is faster than the reference
                        row[f"vs {ref}"] = best[op, ref] / t
                rows.append(row)
    finally:
        shutil.rmtree(directory, ignore_errors=True)

    print(f"# {_machine()}")
    print(
        f"# page cache before each load: {args.cache}; loads timed in the {args.process} "
        "process; "
        f"state dict: {len(arrays)} float32 tensors, {nbytes / 1e6:.0f} MB; best of "
        f"{args.repeats} after warm-up; ratio = reference time / case time (> 1: faster)"
    )
    for op in OPS:
        refs = [f"vs {r}" for r in REFERENCES[op] if (op, r) in best]
        print(f"\n{'case':<40}{'seconds':>8}{'MB/s':>7}" + "".join(f"{r:>24}" for r in refs))
        for r in (r for r in rows if r["case"].split(" ", 1)[0] == op):
            cells = "".join(f"{r[k]:>23.2f}x" if k in r else f"{'':>24}" for k in refs)
            print(f"{r['case']:<40}{r['seconds']:>8.3f}{r['MB/s']:>7.0f}{cells}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": _machine(), "bytes": nbytes, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
