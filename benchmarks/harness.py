"""Timing harness shared by every suite: cases, interleaved measurement, the report.

A suite is a list of `Case`s. Each case times kiln and its reference in the same
process, interleaved round by round (so a noisy neighbour hurts both alike),
after warm-up, and keeps the best round of each (min-of-repeats: the run least
disturbed by the rest of the machine).
"""

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Case:
    """One row: kiln against a reference doing the same work.

    `kiln` and `reference` are zero-argument callables (inputs prepared by the
    suite). With `flops` (or `bytes`) set, the row reports GFLOP/s (GB/s) and the
    ratio is kiln / reference throughput (higher is better); otherwise it reports
    time per call and the ratio is kiln / reference time (lower is better).
    `target` is the ratio the issue asks for, e.g. ("<=", 1.0) or (">=", 0.95).
    Set `threaded` for cases whose libraries run thread pools (BLAS): see
    Note [Thread pools of two libraries]. `min_rounds` lowers the round floor for
    cases whose single call takes seconds (e.g. a transformer training step).
    """

    name: str
    kiln: Callable[[], object]
    reference: Callable[[], object]
    reference_name: str
    flops: float | None = None
    bytes: float | None = None  # memory traffic per call, for bandwidth-bound cases
    reference_bytes: float | None = None  # when the reference moves a different amount
    target: tuple | None = None
    threaded: bool = False
    min_rounds: int | None = None  # overrides Settings.min_rounds (for very slow cases)


@dataclass
class Settings:
    # Interleaved kiln/reference rounds per case: at least min_rounds, then more while
    # the case has spent under case_seconds, up to max_rounds. Short batches and many
    # rounds let the minimum dodge other processes' bursts on a shared machine.
    min_rounds: int = 5
    max_rounds: int = 60
    case_seconds: float = 2.0
    batch_seconds: float = 0.003  # aim for this much work per timed batch
    threaded_batch_seconds: float = 0.03
    warmup_seconds: float = 0.05


def _time_batch(fn, n, prime):
    if prime:
        fn()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - start) / n
    finally:
        if gc_was_enabled:
            gc.enable()


def _calibrate(fn, batch_seconds, settings):
    """Warms `fn` up and returns how many calls make one timed batch."""
    fn()
    n, spent, calls = 1, 0.0, 1
    deadline = time.perf_counter() + settings.warmup_seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        spent += time.perf_counter() - start
        calls += n
        n *= 2
    per_call = spent / max(calls - 1, 1) if spent > 0 else batch_seconds
    return max(1, int(batch_seconds / max(per_call, 1e-9)))


# Note [Thread pools of two libraries]: kiln, NumPy and PyTorch each keep their own
# BLAS/OpenMP worker threads, which spin for a while after a call before sleeping.
# Calling one library right after another makes the two pools fight for the cores:
# on a 2-core machine alternating kiln and NumPy 256x256 GEMMs call by call took
# ~50 ms per pair against ~0.3 ms for either library alone. So threaded cases run
# one untimed call before each timed batch (it absorbs the switch) and use longer
# batches; each library is then timed the way it runs on its own.
def measure(case, settings):
    """Best seconds per call of (kiln, reference), and the number of interleaved rounds."""
    start = time.perf_counter()
    batch = settings.threaded_batch_seconds if case.threaded else settings.batch_seconds
    n_k = _calibrate(case.kiln, batch, settings)
    n_r = _calibrate(case.reference, batch, settings)
    best_k = best_r = float("inf")
    rounds = 0
    min_rounds = settings.min_rounds if case.min_rounds is None else case.min_rounds
    while rounds < min_rounds or (
            rounds < settings.max_rounds and time.perf_counter() - start < settings.case_seconds):
        # Alternate who goes first so neither always runs on a warmer cache.
        if rounds % 2 == 0:
            best_k = min(best_k, _time_batch(case.kiln, n_k, case.threaded))
            best_r = min(best_r, _time_batch(case.reference, n_r, case.threaded))
        else:
            best_r = min(best_r, _time_batch(case.reference, n_r, case.threaded))
            best_k = min(best_k, _time_batch(case.kiln, n_k, case.threaded))
        rounds += 1
    return best_k, best_r, rounds


def run_case(case, settings):
    """The report row of one case."""
    t_k, t_r, rounds = measure(case, settings)
    work, unit = (case.flops, "GFLOP/s") if case.flops else (case.bytes, "GB/s")
    if work:
        ref_work = case.reference_bytes or work
        kiln_value, ref_value = work / t_k / 1e9, ref_work / t_r / 1e9
        ratio = kiln_value / ref_value
    else:
        kiln_value, ref_value, unit = t_k * 1e6, t_r * 1e6, "us"
        ratio = t_k / t_r
    meets = None
    if case.target:
        op, bound = case.target
        meets = ratio <= bound if op == "<=" else ratio >= bound
    return {
        "case": case.name, "unit": unit, "kiln": kiln_value, "reference": ref_value,
        "reference_name": case.reference_name, "ratio": ratio,
        "ratio_meaning": "kiln/ref throughput" if work else "kiln/ref time",
        "target": f"{case.target[0]} {case.target[1]:.2f}" if case.target else None,
        "meets_target": meets, "rounds": rounds,
    }


def format_table(rows):
    header = ["case", "kiln", "reference", "ratio", "target"]
    lines = []
    for r in rows:
        lines.append([
            r["case"],
            f"{r['kiln']:.2f} {r['unit']}",
            f"{r['reference']:.2f} {r['unit']} ({r['reference_name']})",
            f"{r['ratio']:.2f}",
            "" if r["target"] is None else
            f"{r['target']} {'ok' if r['meets_target'] else 'MISSED'}",
        ])
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(out)
