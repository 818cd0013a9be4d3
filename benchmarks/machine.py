"""The machine and library versions a benchmark ran on (printed above every table)."""

import importlib.metadata
import os
import platform


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _numpy_blas():
    import numpy as np

    try:
        blas = np.__config__.CONFIG["Build Dependencies"]["blas"]
        return f"{blas['name']} {blas['version']}"
    except (AttributeError, KeyError, TypeError):
        return "unknown"


def describe():
    """A dict of facts about this machine and the libraries being compared."""
    import kiln

    info = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        # Other processes' load skews timings; worth knowing when comparing runs.
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "kiln": kiln.__version__,
        "kiln_threads": kiln.get_num_threads(),
        "kiln_blas": f"scipy-openblas32 {_version('scipy-openblas32')}",
        "numpy": _version("numpy"),
        "numpy_blas": _numpy_blas(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        info["torch"] = None
    return info


def format_description(info):
    machine = (f"machine: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), "
               f"{info['platform']}, load average {info['load_average_1min']:.2f}")
    versions = (f"python {info['python']}; kiln {info['kiln']} ({info['kiln_threads']} threads, "
                f"{info['kiln_blas']}); numpy {info['numpy']} ({info['numpy_blas']})")
    lines = [machine, versions]
    if info.get("torch"):
        lines[-1] += f"; torch {info['torch']} ({info['torch_threads']} threads)"
    return "\n".join(lines)
