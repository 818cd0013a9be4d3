"""kiln.backends.cudnn, under PyTorch's names so ported scripts keep working.

CUDA convolutions run on cuDNN (the nvidia-cudnn-cu13 wheel, part of
`pip install "kiln[cuda]"`) when it is installed and `enabled`, else as im2col +
cuBLAS GEMMs. `allow_tf32`: whether float32 convolutions may use TF32 tensor cores
(on by default, as in PyTorch; it applies to both paths). `deterministic`: only cuDNN
algorithms whose results are the same on every run (off by default; the im2col path
always is). `benchmark` stays False: kiln picks algorithms with cuDNN's heuristics,
as PyTorch does by default, and setting it True warns.
"""

import sys
import warnings

from kiln.backends._flag import BackendFlag


def _reason():
    from kiln import cuda

    if not cuda.is_available():
        return cuda.is_available(explain=True).reason
    return cuda._module._cudnn_error() or None


def is_available(explain=False):
    """Whether kiln can load cuDNN; with explain=True an Availability saying why not."""
    from kiln import cuda

    reason = _reason()
    return cuda.Availability(reason is None, reason) if explain else reason is None


def version():
    """cuDNN's version as an int (91002 for 9.10.2), or None when it can't be loaded."""
    from kiln import cuda

    return cuda._module._cudnn_version() if is_available() else None


class _Module(type(sys.modules[__name__])):
    enabled = BackendFlag("cudnn.enabled", True)
    allow_tf32 = BackendFlag("cudnn.allow_tf32", True)
    deterministic = BackendFlag("cudnn.deterministic", False)

    @property
    def benchmark(self):
        return False

    @benchmark.setter
    def benchmark(self, value):
        if value:
            warnings.warn("kiln.backends.cudnn.benchmark: kiln has no benchmarking mode; "
                          "convolutions use cuDNN's heuristics", stacklevel=2)


sys.modules[__name__].__class__ = _Module
