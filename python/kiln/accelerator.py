"""kiln.accelerator: which accelerator (if any) this process can use.

Answers on CPU-only machines and on builds without the CUDA module.
"""

from kiln import _C, cuda


def device_count():
    """How many accelerator devices are visible (0 without one)."""
    return cuda.device_count()


def is_available():
    """Whether an accelerator is usable."""
    return device_count() > 0


def current_accelerator(check_available=False):
    """kiln.device("cuda") when an accelerator is usable, else None."""
    return _C.device("cuda") if is_available() else None
