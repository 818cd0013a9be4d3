"""DataLoader worker processes: the loop each worker runs, get_worker_info, seeding,
and how a worker's exception or activity is reported to the main process.

Protocol (main -> worker, per-worker ``index_queue``): ``(batch_idx, index,
returned_blocks)`` tasks, ``RESUME`` (persistent workers starting a new epoch)
and ``None`` (exit). Worker -> main (per-worker pipe, pickled tuples):
``("batch", wid, idx, packed)``, ``("error", wid, idx, ExceptionWrapper)``,
``("stop", wid, idx)`` (an IterableDataset's iterator is exhausted) and
``("resume", wid)``. Array data never goes through the pipe (see shared_memory).
"""

import faulthandler
import os
import pickle
import queue
import random
import signal
import sys
import time
import traceback

import numpy as np

import kiln
from kiln.utils.data import _random, shared_memory
from kiln.utils.data.fetch import make_fetcher

__all__ = ["WorkerInfo", "get_worker_info"]

RESUME = "resume"
POLL_SECONDS = 1.0  # how often an idle worker checks that the main process is alive
PHASES = (
    "idle (waiting for a task)",
    "starting (seeding, worker_init_fn, iter(dataset))",
    "fetching",
    "collating",
    "iterating",
    "sending",
)
_CODE = {p.split()[0]: i for i, p in enumerate(PHASES)}
_DONE = 0  # slot 0 of the status array: set by the main process when shutting down


class WorkerInfo:
    """What a worker knows about itself: ``id``, ``num_workers``, ``seed``, ``dataset`` (its copy)."""

    __initialized = False

    def __init__(self, **kwargs):
        for k, v in kwargs.items():
            setattr(self, k, v)
        self.__keys = tuple(kwargs)
        self.__initialized = True

    def __setattr__(self, key, val):
        if self.__initialized:
            raise RuntimeError(f"Cannot assign attributes to {self.__class__.__name__} objects")
        super().__setattr__(key, val)

    def __repr__(self):
        items = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__keys if k != "dataset")
        return f"WorkerInfo({items})"


_worker_info = None


def get_worker_info():
    """In a DataLoader worker, its :class:`WorkerInfo`; in the main process, None.

    Typical use: shard an IterableDataset in ``__iter__`` by ``info.id`` and
    ``info.num_workers``, or open a per-worker file handle in ``worker_init_fn``.
    """
    return _worker_info


class ExceptionWrapper:
    """An exception raised in a worker, re-raised in the main process with the worker's traceback."""

    def __init__(self, exc_info, where):
        self.exc_type = exc_info[0]
        self.exc_msg = "".join(traceback.format_exception(*exc_info))
        self.where = where
        try:
            pickle.dumps(self.exc_type)
        except Exception:  # noqa: BLE001 (an unpicklable class travels as RuntimeError)
            self.exc_type = RuntimeError

    def reraise(self):
        msg = f"Caught {self.exc_type.__name__} {self.where}.\nOriginal {self.exc_msg}"
        if self.exc_type is KeyError:
            msg = _KeyErrorMessage(msg)  # KeyError would repr() the message, mangling the newlines
        try:
            exc = self.exc_type(msg)
        except Exception:  # noqa: BLE001 (a constructor that takes no message)
            raise RuntimeError(msg) from None
        raise exc


class _KeyErrorMessage(str):
    def __repr__(self):
        return self


class Status:
    """A worker's current activity in a shared array, so a timeout can say what it was doing.

    Layout: slot 0 is the shutdown flag; then 4 int64 slots per worker:
    phase, batch index, sample index, monotonic time (ns) the phase began.
    """

    def __init__(self, array, worker_id):
        self.array = array
        self.base = 1 + 4 * worker_id

    def set(self, phase, batch=-1, sample=-1):
        a, b = self.array, self.base
        a[b] = _CODE[phase]
        a[b + 1] = batch
        a[b + 2] = sample if isinstance(sample, int) else -1
        a[b + 3] = time.monotonic_ns()


def status_array_size(num_workers):
    return 1 + 4 * num_workers


def describe(array, worker_id):
    """'fetching sample 17 of batch 3 for 2.00 s' for the worker's last reported activity."""
    b = 1 + 4 * worker_id
    phase, batch, sample, since = array[b], array[b + 1], array[b + 2], array[b + 3]
    text = PHASES[phase] if 0 <= phase < len(PHASES) else "unknown"
    if sample >= 0:
        text += f" sample {sample} (dataset[{sample}])"
    if batch >= 0:
        text += f" {'of' if sample >= 0 else 'for'} batch {batch}"
    if since:
        text += f" for {(time.monotonic_ns() - since) / 1e9:.2f} s"
    return text


def seed_worker(base_seed, worker_id):
    """Seeds Python's ``random``, kiln and NumPy in a worker; returns kiln's seed (base_seed + worker_id)."""
    seed = base_seed + worker_id
    random.seed(seed)
    _random.manual_seed(seed)
    np.random.seed(np.random.SeedSequence([worker_id, base_seed]).generate_state(4))
    return seed


def worker_loop(a):
    """The body of worker process ``a.worker_id`` (``a``: the WorkerArgs the iterator built)."""
    global _worker_info
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    faulthandler.enable()  # a segfaulting dataset prints its Python traceback
    kiln.set_num_threads(1)  # workers are the parallelism; no OpenMP pools per worker
    shared_memory.enable_in_worker(a.shm_prefix, a.pool_batches)
    status = Status(a.status, a.worker_id)
    status.set("starting")
    seed = seed_worker(a.base_seed, a.worker_id)
    _worker_info = WorkerInfo(
        id=a.worker_id, num_workers=a.num_workers, seed=seed, dataset=a.dataset
    )
    where = f"in DataLoader worker process {a.worker_id}"

    def new_fetcher():
        return make_fetcher(
            a.iterable, a.dataset, a.auto_collation, a.collate_fn, a.drop_last, status
        )

    fetcher, init_error = None, None
    try:
        if a.worker_init_fn is not None:
            a.worker_init_fn(a.worker_id)
        fetcher = new_fetcher()
    except Exception:  # noqa: BLE001 (any dataset error is reported, not fatal here)
        init_error = ExceptionWrapper(sys.exc_info(), where)

    def send(msg):
        a.result_conn.send_bytes(pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL))

    try:
        while True:
            status.set("idle")
            try:
                task = a.index_queue.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if os.getppid() != a.parent_pid:  # main process died: clean up and leave
                    break
                continue
            if task is None:
                break
            if task == RESUME:
                if a.iterable and init_error is None:
                    try:
                        fetcher = new_fetcher()
                    except Exception:  # noqa: BLE001 (any dataset error is reported, not fatal here)
                        init_error = ExceptionWrapper(sys.exc_info(), where)
                send(("resume", a.worker_id))
                continue
            if a.status[_DONE]:
                continue  # shutting down: skip the prefetched tasks
            idx, index, returned = task
            shared_memory.recycle(returned)
            if init_error is not None:
                send(("error", a.worker_id, idx, init_error))
                continue
            try:
                data = fetcher.fetch(index, idx)
                status.set("sending", idx)
                packed = shared_memory.pack(data)
                del data
            except StopIteration:
                shared_memory.release_unsent()
                send(("stop", a.worker_id, idx))
                continue
            except Exception:  # noqa: BLE001 (any dataset error is reported, not fatal here)
                shared_memory.release_unsent()
                send(("error", a.worker_id, idx, ExceptionWrapper(sys.exc_info(), where)))
                continue
            send(("batch", a.worker_id, idx, packed))
            shared_memory.release_unsent(packed)
    except (BrokenPipeError, ConnectionResetError, EOFError):
        pass  # the main process closed its end: it is shutting down
    finally:
        if os.getppid() != a.parent_pid:
            shared_memory.remove_prefixed(a.shm_prefix)
        a.result_conn.close()
