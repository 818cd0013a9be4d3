"""Loads kiln._C_cuda, or says why it can't.

NVIDIA's libraries come from the `nvidia-*` wheels (`pip install "kiln[cuda]"`,
site-packages/nvidia/cu13/lib) or from a system CUDA install. The wheels'
libraries are preloaded by absolute path, the way other Python GPU packages
find them, so kiln._C_cuda's own dependencies resolve to them.
"""

import ctypes
import importlib
import importlib.util
import os

# kiln._C_cuda links the CUDA runtime and loads cuBLAS (which needs cublasLt) on first
# use, and cuDNN (optional: convolutions and attention run without it) on its first
# convolution or attention. cuDNN compiles its fused attention kernels with NVRTC, which
# it finds by name once loaded here.
_RUNTIME = "libcudart.so.13"
_CUBLAS = ("libcublasLt.so.13", "libcublas.so.13")
_CUDNN = ("libnvrtc.so.13", "libcudnn.so.9")


def _wheel_lib_dirs():
    """site-packages/nvidia/cu13/lib (runtime, cuBLAS) and nvidia/cudnn/lib (cuDNN)."""
    spec = importlib.util.find_spec("nvidia")
    if spec is None or not spec.submodule_search_locations:
        return []
    dirs = [os.path.join(p, sub, "lib") for p in spec.submodule_search_locations
            for sub in ("cu13", "cudnn")]
    return [d for d in dirs if os.path.isdir(d)]


def _preload(name, wheel_dirs):
    """Loads one library from the wheels, else from the system search path."""
    for d in wheel_dirs:
        path = os.path.join(d, name)
        if os.path.exists(path):
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            return
    ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)


def load():
    """(module or None, reason or None): the CUDA module and why CUDA is unusable."""
    if os.environ.get("KILN_DISABLE_CUDA", "") not in ("", "0"):
        return None, "disabled by the KILN_DISABLE_CUDA environment variable"
    if importlib.util.find_spec("kiln._C_cuda") is None:
        return None, ("this kiln was built without its CUDA module (kiln._C_cuda): nvcc or "
                      "cuBLAS was not found at build time; rebuild with -DKILN_CUDA=ON")
    wheel_dirs = _wheel_lib_dirs()
    try:
        _preload(_RUNTIME, wheel_dirs)
    except OSError:
        return None, (f"{_RUNTIME} was not found (install the CUDA libraries with "
                      f"pip install \"kiln[cuda]\")")
    try:
        module = importlib.import_module("kiln._C_cuda")
    except ImportError as e:
        return None, f"kiln._C_cuda failed to load: {e}"
    # The module is loaded (its kernels are registered) even when what follows
    # makes CUDA unusable.
    reason = module._unavailable_reason()
    if reason:
        return module, reason
    for name in _CUBLAS:
        try:
            _preload(name, wheel_dirs)
        except OSError:
            return module, (f"{name} was not found (install it with pip install \"kiln[cuda]\")")
    for name in _CUDNN:
        try:
            _preload(name, wheel_dirs)
        except OSError:
            pass  # kiln.backends.cudnn.is_available(explain=True) says why
    return module, module._cublas_error() or None
