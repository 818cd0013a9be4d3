"""Command line: python -m benchmarks --suite ops [--json out.json] [--threads N] [--seconds S].

The data, io, tensorboard and extension suites are standalone programs with their own options
(`python -m benchmarks.data_suite --help`); `--suite data` runs one with its defaults."""

import argparse
import importlib
import json
import os
import sys

from benchmarks import harness, machine, suites

# Suites that measure whole pipelines and keep their own command lines.
STANDALONE = {"data": "benchmarks.data_suite", "io": "benchmarks.io_suite",
              "tensorboard": "benchmarks.tensorboard_suite",
              "extension": "benchmarks.extension_suite"}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--suite", choices=suites.SUITES + sorted(STANDALONE), default="ops",
                        help="which suite to run")
    parser.add_argument("--json", metavar="PATH", help="also write the rows (and machine) as JSON")
    parser.add_argument("--seconds", type=float, default=harness.Settings.case_seconds,
                        help="time spent per case in interleaved rounds (the best is kept)")
    parser.add_argument("--threads", type=int,
                        help="threads for every library (default: each library's own default)")
    args = parser.parse_args(argv)
    if args.threads:
        # Must be set before NumPy, PyTorch or kiln load their thread pools.
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)

    if args.suite in STANDALONE:
        return importlib.import_module(STANDALONE[args.suite]).main([]) or 0

    suite = suites.load(args.suite)
    settings = harness.Settings(case_seconds=args.seconds)
    info = machine.describe()
    print(machine.format_description(info))
    print(f"suite: {args.suite} ({suite.DESCRIPTION}); best of interleaved rounds, "
          f"~{settings.case_seconds:g} s per case")
    print()
    rows = []
    for case in suite.cases():
        rows.append(harness.run_case(case, settings))
        print(f"  {case.name}: done", file=sys.stderr, flush=True)
    print(harness.format_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"suite": args.suite, "machine": info, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
