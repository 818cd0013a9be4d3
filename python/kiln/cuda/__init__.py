"""kiln.cuda: NVIDIA GPUs, with PyTorch's torch.cuda API.

On machines without a GPU, a driver or the CUDA libraries, `import kiln`
still works: `is_available()` is False, `is_available(explain=True)` says
why, queries answer as torch does on such machines (0 devices, 0 bytes) and
everything that needs a GPU raises RuntimeError with the reason.
"""

import contextlib

from kiln import _C
from kiln.cuda import _loader
from kiln.cuda.streams import Event, Stream, current_stream, default_stream, stream  # noqa: F401

_module, _reason = _loader.load()
if _module is None:
    _C._set_unavailable_reason("cuda", _reason)


class Availability:
    """is_available(explain=True)'s answer: truthy when CUDA is usable; `reason` says why not."""

    def __init__(self, available, reason):
        self.available = available
        self.reason = reason

    def __bool__(self):
        return self.available

    def __repr__(self):
        if self.available:
            return "Availability(available=True)"
        return f"Availability(available=False, reason={self.reason!r})"

    __str__ = __repr__


def is_available(explain=False):
    """Whether kiln can use an NVIDIA GPU; with explain=True an Availability saying why not."""
    ok = _reason is None
    return Availability(ok, _reason) if explain else ok


def is_built():
    """Whether this kiln has its CUDA module (it may still lack a GPU or driver)."""
    return _module is not None


def _lazy():
    """The CUDA module, or RuntimeError saying why CUDA can't be used."""
    if _reason is not None:
        raise RuntimeError(f"CUDA is not available: {_reason}")
    return _module


def _index(device):
    """A device index from None (the current device), an int, a string or a kiln.device."""
    if device is None:
        return current_device()
    if isinstance(device, int):
        return device
    d = device if isinstance(device, _C.device) else _C.device(device)
    if d.type != "cuda":
        raise ValueError(f"expected a CUDA device, got {d}")
    return current_device() if d.index is None else d.index


def device_count():
    """How many CUDA devices are visible (0 without a GPU or driver)."""
    return _module.device_count() if _reason is None else 0


def current_device():
    return _lazy().current_device()


def set_device(device):
    _lazy().set_device(_index(device))


def get_device_properties(device=None):
    return _lazy().get_device_properties(_index(device))


def get_device_name(device=None):
    return get_device_properties(device)["name"]


def get_device_capability(device=None):
    p = get_device_properties(device)
    return p["major"], p["minor"]


def synchronize(device=None):
    """Waits until every kernel queued on the device has finished."""
    _lazy().synchronize(_index(device))


@contextlib.contextmanager
def device(device):
    """Makes `device` the current CUDA device inside a `with` block."""
    previous = current_device()
    set_device(device)
    try:
        yield
    finally:
        set_device(previous)


def memory_allocated(device=None):
    """Bytes of device memory held by kiln tensors (0 without CUDA)."""
    return _module.memory_allocated(_index(device)) if _reason is None else 0


def max_memory_allocated(device=None):
    """The peak of memory_allocated since the start or the last reset (0 without CUDA)."""
    return _module.max_memory_allocated(_index(device)) if _reason is None else 0


def reset_peak_memory_stats(device=None):
    if _reason is None:
        _module.reset_peak_memory_stats(_index(device))


def empty_cache():
    """Returns cached, unused memory of the stream-ordered pools to the driver."""
    if _reason is None:
        _module.empty_cache()


def manual_seed(seed):
    """Seeds the current CUDA device's default generator (deferred, as in torch, without CUDA)."""
    if _reason is None:
        _C._default_generator(_C.device("cuda", current_device())).manual_seed(seed)


def manual_seed_all(seed):
    for i in range(device_count()):
        _C._default_generator(_C.device("cuda", i)).manual_seed(seed)
