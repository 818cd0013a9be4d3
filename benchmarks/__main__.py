"""Command line: python -m benchmarks --suite ops [--json out.json] [--threads N] [--seconds S]."""

import argparse
import json
import os
import sys

from benchmarks import harness, machine, suites


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--suite", choices=suites.SUITES, default="ops", help="which suite to run")
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
