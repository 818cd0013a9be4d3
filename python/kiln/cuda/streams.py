"""CUDA streams and events (kiln.cuda.Stream, Event, stream(...)), as in torch.cuda."""

import contextlib

from kiln import _C


def _cuda():
    from kiln import cuda

    return cuda._lazy()


def _device_index(device):
    from kiln import cuda

    return cuda._index(device)


class Stream:
    """A queue of kernels on one device; kernels on different streams may overlap."""

    def __init__(self, device=None, priority=0):
        self._s = _cuda()._Stream(_device_index(device), priority)

    @classmethod
    def _wrap(cls, device_index, ptr):
        s = cls.__new__(cls)
        s._s = _cuda()._Stream.wrap(device_index, ptr)
        return s

    @property
    def device(self):
        return _C.device("cuda", self._s.device)

    @property
    def cuda_stream(self):
        return self._s.ptr

    def synchronize(self):
        self._s.synchronize()

    def query(self):
        return self._s.query()

    def record_event(self, event=None):
        event = Event() if event is None else event
        event.record(self)
        return event

    def wait_event(self, event):
        self._s.wait_event(event._e)

    def wait_stream(self, stream):
        self.wait_event(stream.record_event())

    def __eq__(self, other):
        return isinstance(other, Stream) and (self.cuda_stream, self._s.device) == (
            other.cuda_stream, other._s.device)

    def __hash__(self):
        return hash((self.cuda_stream, self._s.device))

    def __repr__(self):
        return f"<kiln.cuda.Stream device={self.device} cuda_stream={self.cuda_stream:#x}>"


class Event:
    """A marker in a stream: wait for it, or time the work between two of them."""

    def __init__(self, enable_timing=False, blocking=False, interprocess=False):
        if interprocess:
            raise NotImplementedError("[Event] interprocess events are not supported")
        self._e = _cuda()._Event(enable_timing, blocking)

    def record(self, stream=None):
        self._e.record((current_stream() if stream is None else stream)._s)

    def wait(self, stream=None):
        (current_stream() if stream is None else stream).wait_event(self)

    def query(self):
        return self._e.query()

    def synchronize(self):
        self._e.synchronize()

    def elapsed_time(self, end_event):
        """Milliseconds between this event and `end_event` (both recorded, timing enabled)."""
        return self._e.elapsed_time(end_event._e)


def current_stream(device=None):
    """The stream kernels on `device` are queued on in this thread."""
    index = _device_index(device)
    return Stream._wrap(index, _cuda()._current_stream(index))


def default_stream(device=None):
    return Stream._wrap(_device_index(device), 0)


@contextlib.contextmanager
def stream(s):
    """Queues kernels on stream `s` (on its device) inside a `with` block; None does nothing."""
    if s is None:
        yield
        return
    cuda = _cuda()
    index = s._s.device
    previous = cuda._current_stream(index)
    cuda._set_current_stream(index, s.cuda_stream)
    try:
        yield s
    finally:
        cuda._set_current_stream(index, previous)


# DLPack's stream numbers for CUDA: 1 the legacy default stream, 2 the per-thread default
# stream, anything larger a cudaStream_t, -1 "no synchronization"; 0 is not allowed. Those
# numbers are also valid stream handles, so they can be waited on as they are.
def _dlpack_stream(device_index):
    """The number a DLPack producer gets for kiln's current stream (consumer side)."""
    ptr = _cuda()._current_stream(device_index)
    return 1 if ptr == 0 else ptr


def _dlpack_wait(device_index, consumer_stream):
    """Producer side: the consumer's stream waits for the work queued on kiln's current stream,
    so it never reads a tensor kiln is still writing."""
    if consumer_stream == -1:
        return
    consumer = 1 if consumer_stream is None else consumer_stream
    if consumer == _dlpack_stream(device_index):
        return
    event = Event()
    event.record(current_stream(device_index))
    Stream._wrap(device_index, consumer).wait_event(event)
