"""Event files: framed records written by a background thread.

Note [Event file durability]: a record is ``uint64 length, uint32 masked
CRC32C(length), payload, uint32 masked CRC32C(payload)`` (little-endian), the
framing TensorBoard's readers check. Records reach the file only in whole
batches written by one thread, and `flush()`/`close()` end with `os.fsync`, so
a process killed at any moment leaves every flushed record intact; a torn last
record (if the kill lands mid-write) fails its CRC and readers stop before it.

The caller's thread only appends to a deque (the scalar fast path does not even
build a protobuf: the writer thread encodes scalars in bulk). The writer wakes
when `max_queue` records are pending, on `flush_secs`, and on flush/close; when
the backlog passes a hard bound (records or bytes), callers wait for it.
"""

import atexit
import collections
import itertools
import os
import socket
import struct
import threading
import time
import weakref

import numpy as np

from kiln.summary import _proto
from kiln.summary.crc32c import masked_crc32c, masked_crc32c_packed

_file_counter = itertools.count()
_MAX_PENDING_RECORDS = 1 << 17
_MAX_PENDING_BYTES = 64 << 20
DEFAULT_MAX_FILE_BYTES = 1 << 30


class _Barrier:
    """A flush or close request; `done` is set once the writer has handled it."""

    def __init__(self, close):
        self.close = close
        self.done = threading.Event()


class EventFileWriter:
    """Writes events to ``events.out.tfevents.*`` files in ``logdir``.

    Files roll over once they exceed ``max_file_bytes`` (checked after each
    batch of records, so a file can pass the limit by one batch).
    """

    def __init__(
        self,
        logdir,
        max_queue=10,
        flush_secs=120,
        filename_suffix="",
        max_file_bytes=DEFAULT_MAX_FILE_BYTES,
    ):
        if max_file_bytes <= 0:
            raise ValueError(
                f"[SummaryWriter] max_file_bytes must be positive, got {max_file_bytes}"
            )
        self._logdir = str(logdir)
        os.makedirs(self._logdir, exist_ok=True)
        self._max_queue = max(1, int(max_queue))
        self._flush_secs = float(flush_secs)
        self._suffix = filename_suffix
        self._max_file_bytes = int(max_file_bytes)
        self._queue = collections.deque()
        self._wake = threading.Event()
        self._room = threading.Condition()
        self._pending_bytes = 0
        self._closed = False
        self._error = None
        self._last_stamp = 0
        self._file = None
        self._open_next_file()
        self._thread = threading.Thread(target=self._run, name="kiln-summary-writer", daemon=True)
        self._thread.start()
        atexit.register(_close_at_exit, weakref.ref(self))

    def get_logdir(self):
        return self._logdir

    @property
    def path(self):
        """The event file being written now."""
        return self._file.name

    # ---- caller side -------------------------------------------------------

    def add_scalar(self, tag, value, step, walltime):
        """Queues a scalar (a float) without building a protobuf on this thread."""
        queue = self._queue
        queue.append((tag, value, step, walltime))
        if len(queue) >= self._max_queue:
            self._nudge(len(queue))

    def add_event(self, event):
        self._put_bytes(event.SerializeToString())

    def add_summary(self, summary, global_step=None, walltime=None):
        event = _proto.Event(
            summary=summary, wall_time=time.time() if walltime is None else walltime
        )
        if global_step is not None:
            event.step = int(global_step)
        self.add_event(event)

    def _put_bytes(self, data):
        self._check_open()
        if self._pending_bytes + len(data) > _MAX_PENDING_BYTES:
            with self._room:
                while self._pending_bytes and self._pending_bytes + len(data) > _MAX_PENDING_BYTES:
                    self._wait_for_writer()
        with self._room:
            self._pending_bytes += len(data)
        self._queue.append(data)
        if len(self._queue) >= self._max_queue:
            self._nudge(len(self._queue))

    def _nudge(self, pending):
        if pending >= _MAX_PENDING_RECORDS:
            with self._room:
                while len(self._queue) >= _MAX_PENDING_RECORDS:
                    self._wait_for_writer()
        elif not self._wake.is_set():
            self._wake.set()

    def _wait_for_writer(self):
        # Called with self._room held.
        self._check_open()
        self._wake.set()
        self._room.wait(1.0)

    def _check_open(self):
        if self._error is not None:
            raise RuntimeError(f"[SummaryWriter] writing {self.path} failed") from self._error
        if self._closed:
            raise RuntimeError("[SummaryWriter] the event file writer is closed")

    def flush(self):
        """Writes everything queued so far to disk (fsync) before returning."""
        self._barrier(close=False)

    def close(self):
        """Flushes, then closes the file and stops the writer thread. Idempotent."""
        if self._closed:
            return
        self._barrier(close=True)
        self._closed = True
        self._thread.join()

    def _barrier(self, close):
        self._check_open()
        barrier = _Barrier(close)
        self._queue.append(barrier)
        self._wake.set()
        while not barrier.done.wait(0.5):
            if not self._thread.is_alive():
                break
        if self._error is not None:
            raise RuntimeError(f"[SummaryWriter] writing {self.path} failed") from self._error

    # ---- writer thread -----------------------------------------------------

    def _run(self):
        next_flush = time.monotonic() + self._flush_secs
        try:
            while True:
                self._wake.wait(max(0.0, next_flush - time.monotonic()))
                self._wake.clear()
                if self._drain():
                    return
                if time.monotonic() >= next_flush:
                    self._sync()
                    next_flush = time.monotonic() + self._flush_secs
        except BaseException as e:  # noqa: BLE001 (surfaced to the caller on its next call)
            self._error = e
            self._release_barriers()

    def _drain(self):
        """Writes out what is queued; True once a close request was handled."""
        queue = self._queue
        records, scalars, nbytes = [], [], 0
        for _ in range(len(queue)):
            item = queue.popleft()
            if type(item) is tuple:
                scalars.append(item)
                continue
            if scalars:
                records.extend(_encode_scalars(scalars))
                scalars = []
            if type(item) is bytes:
                records.append(item)
                nbytes += len(item)
                continue
            self._write(records)
            records = []
            self._sync()
            if item.close:
                self._file.close()
            item.done.set()
            if item.close:
                return True
        if scalars:
            records.extend(_encode_scalars(scalars))
        self._write(records)
        with self._room:
            self._pending_bytes -= nbytes
            self._room.notify_all()
        return False

    def _write(self, records):
        if not records:
            return
        self._file.write(_frame(records))
        self._file_bytes += sum(map(len, records)) + 16 * len(records)
        if self._file_bytes >= self._max_file_bytes:
            self._sync()
            self._file.close()
            self._open_next_file()

    def _sync(self):
        self._file.flush()
        os.fsync(self._file.fileno())

    def _open_next_file(self):
        # Readers take a run's files in name order: keep the stamps increasing.
        stamp = max(int(time.time()), self._last_stamp + 1)
        self._last_stamp = stamp
        host, pid, count = socket.gethostname(), os.getpid(), next(_file_counter)
        name = f"events.out.tfevents.{stamp:010d}.{host}.{pid}.{count}{self._suffix}"
        path = os.path.join(self._logdir, name)
        self._file = open(path, "wb", buffering=0)  # noqa: SIM115 (lives until rollover/close)
        first = _frame(
            [_proto.Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString()]
        )
        self._file.write(first)
        self._file_bytes = len(first)
        self._sync()

    def _release_barriers(self):
        while self._queue:
            item = self._queue.popleft()
            if isinstance(item, _Barrier):
                item.done.set()
        with self._room:
            self._room.notify_all()


def _encode_scalars(scalars):
    """Serialized Events for (tag, value, step, walltime) tuples, reusing one message."""
    event = _proto.Event()
    value = event.summary.value.add()
    out = []
    for tag, simple_value, step, walltime in scalars:
        event.wall_time = walltime
        event.step = step
        value.tag = tag
        value.simple_value = simple_value
        out.append(event.SerializeToString())
    return out


def _frame(records):
    """The bytes of ``records`` framed as TFRecords (Note [Event file durability]).

    Built with NumPy in one pass: each record's 12-byte head (length, masked
    CRC of the length), its payload, then the payload's masked CRC.
    """
    n = len(records)
    lengths = np.fromiter(map(len, records), dtype=np.int64, count=n)
    data = np.frombuffer(b"".join(records), dtype=np.uint8)
    unique, which = np.unique(lengths, return_inverse=True)
    heads = np.frombuffer(b"".join(map(_header, unique.tolist())), dtype=np.uint8)
    heads = heads.reshape(-1, 12)[which.reshape(-1)]
    tails = masked_crc32c_packed(data, lengths).astype("<u4").view(np.uint8).reshape(n, 4)
    starts = np.cumsum(lengths + 16) - (lengths + 16)  # where each framed record begins
    out = np.empty(len(data) + 16 * n, dtype=np.uint8)
    out[(starts[:, None] + np.arange(12)).reshape(-1)] = heads.reshape(-1)
    out[np.repeat(starts + 12 - (np.cumsum(lengths) - lengths), lengths) + np.arange(len(data))] = (
        data
    )
    out[(starts[:, None] + (lengths + 12)[:, None] + np.arange(4)).reshape(-1)] = tails.reshape(-1)
    return out.tobytes()


_headers = {}


def _header(length):
    """Length and its masked CRC, cached: small records repeat a few lengths."""
    head = _headers.get(length)
    if head is None:
        head = struct.pack("<Q", length)
        head += struct.pack("<I", masked_crc32c(head))
        if length < 4096:
            _headers[length] = head
    return head


def _close_at_exit(ref):
    writer = ref()
    if writer is not None and not writer._closed and writer._error is None:
        writer.close()
