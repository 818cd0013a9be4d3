"""kiln benchmarks: `python -m benchmarks --suite ops [--json out.json]`.

Each suite (benchmarks/suites/<name>.py) times kiln against a reference library
in the same process and prints a table of case, kiln, reference and ratio with
the machine's description on top. Tests never assert on these numbers.
"""
