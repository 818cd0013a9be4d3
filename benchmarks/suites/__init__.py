"""The benchmark suites. A suite is a module here with a DESCRIPTION string and a
`cases()` function returning `benchmarks.harness.Case`s; add its name to SUITES."""

import importlib

SUITES = ["ops", "conv", "train", "amp", "gpu"]


def load(name):
    return importlib.import_module(f"benchmarks.suites.{name}")
