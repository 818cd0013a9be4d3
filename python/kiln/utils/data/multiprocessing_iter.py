"""The multi-process DataLoader iterator: starts and supervises workers, orders their batches.

The main process keeps up to ``prefetch_factor * num_workers`` tasks in flight,
each on one worker's index queue, and waits on every worker's result pipe *and*
process sentinel at once (``multiprocessing.connection.wait``): a batch, an
error, or a worker's death wakes it immediately, so a dead worker is an error
naming it and its signal, never a hang. ``timeout`` bounds each wait.

Cleanup (Note [DataLoader cleanup]): ``_shutdown`` runs when the epoch ends
(non-persistent), when the iterator is garbage-collected (break, an exception
in the training loop, ``del loader``), on a worker failure and at interpreter
exit. It sets the shutdown flag (workers skip queued tasks), closes the result
pipes (a worker blocked sending gets EPIPE), sends ``None``, joins, escalates
to SIGTERM/SIGKILL after a grace period, then unlinks every /dev/shm file with
this iterator's prefix, including blocks in flight or left by a killed worker.
"""

import atexit
import collections
import itertools
import multiprocessing
import os
import pickle
import signal
import time
import types
import weakref
from multiprocessing.connection import wait
from multiprocessing.reduction import ForkingPickler

import kiln
from kiln.utils.data import _random, shared_memory
from kiln.utils.data.dataloader import BaseIter
from kiln.utils.data.worker import (
    RESUME,
    ExceptionWrapper,
    describe,
    status_array_size,
    worker_loop,
)

_JOIN_SECONDS = 5.0
_serial = itertools.count()
_live = weakref.WeakSet()


def _rebuild_tensor(array, requires_grad):
    t = kiln.from_numpy(array)
    return t.requires_grad_() if requires_grad else t


def _reduce_tensor(t):
    # How a dataset holding tensors reaches spawn/forkserver workers.
    return _rebuild_tensor, ((t.detach() if t.requires_grad else t).numpy(), t.requires_grad)


ForkingPickler.register(kiln.Tensor, _reduce_tensor)


@atexit.register
def _shutdown_all():
    for it in list(_live):
        it._shutdown()


def _mib(n):
    return f"{n / 2**20:,.1f} MiB"


_SIGNAL_HINTS = {
    signal.SIGKILL: "killed from outside the process, often by the out-of-memory killer",
    signal.SIGSEGV: "a crash in native code; the worker's Python traceback is on stderr",
    signal.SIGBUS: "often shared memory (/dev/shm) running out",
    signal.SIGTERM: "terminated from outside the process",
}


class MultiProcessingIter(BaseIter):
    def __init__(self, loader):
        self._shutdown_done = True  # until there is something to shut down
        super().__init__(loader)
        self._owner_pid = os.getpid()
        self._num_workers = n = loader.num_workers
        self._prefetch_factor = loader.prefetch_factor
        self._timeout = loader.timeout
        self._in_order = loader.in_order
        self._persistent = loader.persistent_workers
        self._pending = collections.deque()  # indices taken from the sampler but not yet sent
        self._shm_prefix = f"kiln_dl_{os.getpid()}_{next(_serial)}_"
        self._first_batch_checked = False
        self._check_shm_room_from_first_sample()

        ctx = loader.multiprocessing_context or multiprocessing.get_context()
        self._status = ctx.RawArray("q", status_array_size(n))
        self._receiver = shared_memory.Receiver(n)
        self._workers, self._index_queues, self._conns = [], [], []
        self._shutdown_done = False
        _live.add(self)
        for wid in range(n):
            index_queue = ctx.Queue()
            index_queue.cancel_join_thread()  # never block exit on a queue a dead worker no longer reads
            reader, writer = ctx.Pipe(duplex=False)
            args = types.SimpleNamespace(
                worker_id=wid,
                num_workers=n,
                dataset=self._dataset,
                iterable=self._iterable,
                auto_collation=self._auto_collation,
                collate_fn=self._collate_fn,
                drop_last=self._drop_last,
                base_seed=self._base_seed,
                worker_init_fn=loader.worker_init_fn,
                index_queue=index_queue,
                result_conn=writer,
                status=self._status,
                shm_prefix=f"{self._shm_prefix}w{wid}_",
                # blocks for batches in flight, held by the user and on their way back
                pool_batches=self._prefetch_factor + 3,
                parent_pid=self._owner_pid,
            )
            worker = ctx.Process(
                target=worker_loop, args=(args,), name=f"kiln DataLoader worker {wid}", daemon=True
            )
            worker.start()  # returns once the process exists; workers initialize concurrently
            writer.close()  # only the worker writes; EOF then means it is gone
            self._workers.append(worker)
            self._index_queues.append(index_queue)
            self._conns.append(reader)
        self._reset(loader, first_iter=True)

    # -- the shared-memory budget -------------------------------------------------------------

    def _check_room(self, batch_bytes, how):
        slots = self._prefetch_factor * self._num_workers
        need, free = batch_bytes * slots, shared_memory.free_bytes()
        if need > free:
            raise RuntimeError(
                f"DataLoader: not enough shared memory for its workers: prefetch_factor "
                f"({self._prefetch_factor}) x num_workers ({self._num_workers}) = {slots} batches of "
                f"{_mib(batch_bytes)} ({how}) need {_mib(need)}, but {shared_memory.SHM_DIR} has "
                f"{_mib(free)} free. Make {shared_memory.SHM_DIR} larger (docker: --shm-size), or lower "
                "num_workers, prefetch_factor or batch_size."
            )

    def _check_shm_room_from_first_sample(self):
        """Before any worker starts: the first batch's size is estimated from its first sample,
        fetched here in the main process."""
        if self._iterable:
            return  # a stream can't be peeked without consuming it: checked at the first batch
        try:
            first = next(self._sampler_iter)
        except StopIteration:
            return
        self._pending.append(first)
        count = len(first) if self._auto_collation else 1
        if count == 0:
            return
        try:
            with (
                _random.preserved_rng_state()
            ):  # a random transform must not shift the user's streams
                sample = self._dataset[first[0] if self._auto_collation else first]
        except Exception:  # noqa: BLE001 (the worker fetching it reports it, with its traceback)
            return  # the worker fetching it reports the error with its traceback
        self._first_batch_checked = True
        size = shared_memory.sizeof(sample)
        self._check_room(
            size * count, f"estimated from the first batch: {count} samples of {size:,} bytes"
        )

    # -- sending tasks ------------------------------------------------------------------------

    def _reset(self, loader, first_iter=False):
        if not first_iter:
            super()._reset(loader)
            self._pending.clear()
            self._task_info = {}  # every batch still on its way is now stale
            for q in self._index_queues:
                q.put(RESUME)
            waiting = self._num_workers
            while waiting:  # drop what the workers still send from the previous epoch
                kind, _, _, _ = self._receive()
                waiting -= kind == "resume"
        self._send_idx = self._rcvd_idx = self._outstanding = 0
        self._task_info = {}  # batch idx -> (worker,) while in flight, (worker, data) once here early
        self._per_worker = [0] * self._num_workers
        self._active = [
            True
        ] * self._num_workers  # False once a worker's IterableDataset is exhausted
        self._worker_cycle = itertools.cycle(range(self._num_workers))
        for _ in range(self._prefetch_factor * self._num_workers):
            self._try_put_index()

    def _next_index(self):
        return self._pending.popleft() if self._pending else next(self._sampler_iter)

    def _try_put_index(self):
        if self._outstanding >= self._prefetch_factor * self._num_workers:
            return
        try:
            index = self._next_index()
        except StopIteration:
            return
        for _ in range(self._num_workers):
            wid = next(self._worker_cycle)
            if self._active[wid] and (
                self._in_order or self._per_worker[wid] < self._prefetch_factor
            ):
                break
        else:
            self._pending.appendleft(index)
            return
        self._index_queues[wid].put((self._send_idx, index, self._receiver.take_returned(wid)))
        self._task_info[self._send_idx] = (wid,)
        self._outstanding += 1
        self._per_worker[wid] += 1
        self._send_idx += 1

    # -- receiving batches --------------------------------------------------------------------

    def _next_data(self):
        while True:
            while self._rcvd_idx < self._send_idx:
                info = self._task_info.get(self._rcvd_idx)
                if info is not None and (len(info) == 2 or self._active[info[0]]):
                    break
                self._task_info.pop(
                    self._rcvd_idx, None
                )  # returned out of order, or its worker is exhausted
                self._rcvd_idx += 1
            else:
                if not self._persistent:
                    self._shutdown()
                raise StopIteration
            info = self._task_info[self._rcvd_idx]
            if len(info) == 2:
                del self._task_info[self._rcvd_idx]
                self._rcvd_idx += 1
                return self._process(info[1])
            kind, wid, idx, data = self._receive()
            if kind in ("resume", "stale"):
                continue
            self._outstanding -= 1
            self._per_worker[wid] -= 1
            if kind == "stop":
                self._active[wid] = False
                self._try_put_index()
                continue
            if idx == self._rcvd_idx:
                del self._task_info[idx]
                self._rcvd_idx += 1
                return self._process(data)
            if self._in_order:
                self._task_info[idx] += (data,)
                continue
            del self._task_info[idx]
            return self._process(data)

    def _process(self, data):
        self._try_put_index()
        if isinstance(data, ExceptionWrapper):
            data.reraise()
        return data

    def _receive(self):
        """(kind, worker, batch idx, data) of the next message from any worker."""
        deadline = time.monotonic() + self._timeout if self._timeout > 0 else None
        owner = self._task_info.get(self._rcvd_idx, (0,))[0]
        order = [(owner + k) % self._num_workers for k in range(self._num_workers)]
        while True:
            waitables = [self._conns[w] for w in order] + [self._workers[w].sentinel for w in order]
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = set(wait(waitables, remaining))
            if not ready:
                self._raise_timeout()
            for w in order:
                if self._conns[w] in ready:
                    try:
                        raw = self._conns[w].recv_bytes()
                    except (EOFError, OSError):
                        self._raise_worker_died(w)
                    return self._decode(pickle.loads(raw))
            for w in order:
                if self._workers[w].sentinel in ready:
                    self._raise_worker_died(w)

    def _decode(self, msg):
        kind, wid = msg[0], msg[1]
        if kind == "resume":
            return kind, wid, None, None
        if kind == "stop":
            return kind, wid, msg[2], None
        if kind == "error":
            return kind, wid, msg[2], msg[3]
        _, wid, idx, packed = msg
        if (
            self._task_info.get(idx, (None,))[0] != wid
        ):  # a stale batch from an epoch that was cut short
            self._receiver.discard(wid, packed)
            return "stale", wid, idx, None
        data = self._receiver.unpack(wid, packed)
        if not self._first_batch_checked:
            self._first_batch_checked = True
            size = shared_memory.array_bytes(packed)
            try:
                self._check_room(size, "the size of the first batch")
            except RuntimeError:
                self._shutdown()
                raise
        return kind, wid, idx, data

    def _worker_line(self, w):
        worker = self._workers[w]
        return f"worker {w} (pid {worker.pid}) was {describe(self._status, w)}"

    def _raise_timeout(self):
        owner = self._task_info.get(self._rcvd_idx, (0,))[0]
        others = [self._worker_line(w) for w in range(self._num_workers) if w != owner]
        raise RuntimeError(
            f"DataLoader timed out after {self._timeout} seconds waiting for batch {self._rcvd_idx} from "
            f"worker {owner}; {self._worker_line(owner)}"
            + ("; " + "; ".join(others) if others else "")
        )

    def _raise_worker_died(self, w):
        worker = self._workers[w]
        doing = describe(self._status, w)
        worker.join(_JOIN_SECONDS)  # the pipe closes a moment before the exit status is ready
        code = worker.exitcode
        if code is None:
            how = "closed its connection while still running"
        elif code < 0:
            sig = signal.Signals(-code)
            hint = _SIGNAL_HINTS.get(sig)
            how = f"was killed by signal {sig.name} ({-code})" + (f" ({hint})" if hint else "")
        else:
            how = f"exited unexpectedly with exit code {code}"
        owed = sorted(i for i, info in self._task_info.items() if info[0] == w and len(info) == 1)
        self._shutdown()
        raise RuntimeError(
            f"DataLoader worker {w} (pid {worker.pid}) {how}. It was {doing}; batches it still owed: {owed}."
        )

    # -- shutdown -----------------------------------------------------------------------------

    def _shutdown(self):
        if self._shutdown_done or os.getpid() != self._owner_pid:
            return  # (a forked child holds a copy of this object: not its to clean up)
        self._shutdown_done = True
        _live.discard(self)
        try:
            self._status[0] = 1
            for conn in self._conns:
                conn.close()
            for q in self._index_queues:
                try:
                    q.put(None)
                except (OSError, ValueError):
                    pass
            deadline = time.monotonic() + _JOIN_SECONDS
            for worker in self._workers:
                worker.join(max(0.0, deadline - time.monotonic()))
            for worker in self._workers:
                if worker.is_alive():
                    worker.terminate()
                    worker.join(1.0)
                if worker.is_alive():
                    worker.kill()
                    worker.join()
            for q in self._index_queues:
                q.close()
        finally:
            self._receiver.close()
            shared_memory.remove_prefixed(self._shm_prefix)

    def __del__(self):
        self._shutdown()
