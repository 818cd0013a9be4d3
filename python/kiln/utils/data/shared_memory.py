"""Shared-memory transport of batches from worker processes to the main process.

A worker writes each tensor's (and large NumPy array's) data into a *block*, a
file in /dev/shm, and sends only a small pickled message: the batch's structure
with every array replaced by a descriptor (block, offset, dtype, shape,
strides). The main process rebuilds the arrays zero-copy over its mapping of
the block (``kiln.from_numpy(np.ndarray(buffer=...))``).

Inside a worker, :func:`empty` hands out arrays that already live in a block,
so ``default_collate`` stacks a batch straight into its final place and
:func:`pack` only references it (no second copy).

Note [block pool]: a fresh block per batch costs a file creation, two mappings,
a page fault per 4 KiB page on each side, an unlink and freeing the pages again;
that was about a quarter of a worker's CPU time per batch of 128 CIFAR images.
So blocks are pooled: each worker keeps up to ``pool_batches`` batches' worth
of blocks mapped, the main process keeps its mapping of each, and a block is
reused once the batch that lived in it is gone. Every batch gets its own small
root array over each of its blocks; when the last tensor using it dies, a
finalizer queues the block's name for its worker, and the next task sent to
that worker carries the name back (:class:`Receiver`). A worker whose pool is
full (the user keeps many batches) uses a one-off block, which the main process
does not keep. (So a worker's collate_fn must not hold on to a batch it has
returned: its block will carry a later batch.)

The main process unlinks a block's file as soon as it has mapped it, so a block
that has reached it leaves nothing behind however the processes end (its pages
go when the last mapping does). Every file name starts with the iterator's
prefix, so the rest (blocks not yet received, those of a dead or interrupted
worker) is removed by :func:`remove_prefixed`.
"""

import collections
import io
import mmap
import os
import pickle
import weakref

import numpy as np

import kiln

SHM_DIR = "/dev/shm"
_ALIGN = 64
_INLINE_NDARRAY_BYTES = 4096  # smaller NumPy arrays travel inside the pickle (tensors never do)
# A pooled block's pages are mapped in one call when it is created, not by a fault per page.
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)


def free_bytes():
    """Bytes available in the shared-memory filesystem."""
    st = os.statvfs(SHM_DIR)
    return st.f_bavail * st.f_frsize


def sizeof(obj):
    """Bytes of array data in ``obj`` (tensors, arrays, numbers, nested containers)."""
    if isinstance(obj, kiln.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, (int, float, bool, np.generic)):
        return 8
    if isinstance(obj, dict):
        return sum(sizeof(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(sizeof(v) for v in obj)
    return 0


def _unlink(name):
    try:
        os.unlink(os.path.join(SHM_DIR, name))
    except OSError:
        pass


def remove_prefixed(prefix):
    """Unlinks every shared-memory file whose name starts with ``prefix``."""
    try:
        names = os.listdir(SHM_DIR)
    except OSError:
        return
    for name in names:
        if name.startswith(prefix):
            _unlink(name)


def _map(name, nbytes, create=False, populate=False):
    flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
    fd = os.open(os.path.join(SHM_DIR, name), flags, 0o600)
    try:
        if create:
            os.ftruncate(fd, nbytes)
        return mmap.mmap(fd, nbytes, flags=mmap.MAP_SHARED | (_POPULATE if populate else 0))
    finally:
        os.close(fd)


# -- the worker's side ----------------------------------------------------------------------------


class _Block:
    __slots__ = ("address", "name", "pooled", "size", "view")

    def __init__(self, name, size, view, pooled):
        self.name, self.size, self.view, self.pooled = name, size, view, pooled
        self.address = view.ctypes.data


class _WorkerBlocks:
    """A worker's blocks: its pool (each free or lent to the main process) and this task's."""

    def __init__(self, prefix, pool_batches):
        self.prefix = prefix
        self.counter = 0
        self.pool_batches = pool_batches
        self.per_task = 1  # most blocks one task has taken: the pool holds pool_batches x this
        self.pool = {}  # name -> _Block, free or in use
        self.free = {}  # name -> _Block, pooled and not in use
        self.evicted = []  # pooled blocks dropped here, for the main process to unmap
        self.pending = []  # blocks this task has taken, not yet handed over

    def _create(self, nbytes, size, pooled):
        # tmpfs allocates pages when they are first touched (or mapped with MAP_POPULATE) and
        # ftruncate does not reserve them. So check the room first; a tmpfs that fills up
        # anyway between this check and the write kills the worker with SIGBUS, which the
        # main process reports with that hint.
        free = free_bytes()
        if nbytes > free:
            raise RuntimeError(
                f"DataLoader worker is out of shared memory: a block of {nbytes:,} bytes does not "
                f"fit in {SHM_DIR} ({free:,} bytes free). Make {SHM_DIR} larger (e.g. docker run "
                "--shm-size), or lower num_workers, prefetch_factor or batch_size."
            )
        name = f"{self.prefix}{'p' if pooled else 'x'}{self.counter}"
        self.counter += 1
        return _Block(name, size, np.frombuffer(_map(name, size, True, pooled), np.uint8), pooled)

    def take(self, nbytes):
        """A block of at least ``nbytes`` for this task: a free pooled one that is at most twice
        as big, a new pooled one, or (pool full and all of it in use) a one-off."""
        size = -(-nbytes // mmap.PAGESIZE) * mmap.PAGESIZE
        fits = [b for b in self.free.values() if size <= b.size <= 2 * size]
        if fits:
            block = min(fits, key=lambda b: b.size)
            del self.free[block.name]
        else:
            if len(self.pool) >= self.per_task * self.pool_batches and self.free:
                victim = self.free.pop(next(iter(self.free)))  # the wrong size: make room
                del self.pool[victim.name]
                _unlink(victim.name)  # (unless the main process has mapped it, and so unlinked it)
                self.evicted.append(victim.name)
            pooled = len(self.pool) < self.per_task * self.pool_batches
            block = self._create(nbytes, size if pooled else nbytes, pooled)
            if pooled:
                self.pool[block.name] = block
        self.pending.append(block)
        self.per_task = max(self.per_task, len(self.pending))
        return block

    def find(self, address, nbytes):
        for block in self.pending:
            if block.address <= address and address + nbytes <= block.address + block.size:
                return block, address - block.address
        return None

    def release_unsent(self, sent):
        """Ends a task: blocks no message references (a failed or filtered batch) go back to the
        pool or are unlinked; sent pooled blocks stay in use until the main process returns them."""
        for block in self.pending:
            if block.name in sent:
                continue
            if block.pooled:
                self.free[block.name] = block
            else:
                _unlink(block.name)
        self.pending.clear()

    def recycle(self, names):
        for name in names:
            block = self.pool.get(name)
            if block is not None:
                self.free[name] = block


_blocks = None  # set in worker processes only


def enable_in_worker(prefix, pool_batches):
    global _blocks
    _blocks = _WorkerBlocks(prefix, pool_batches)


def release_unsent(packed=None):
    if _blocks is not None:
        _blocks.release_unsent({b[0] for b in packed[0]} if packed else set())


def recycle(names):
    """Blocks the main process is done with (their names came back with a task)."""
    if _blocks is not None:
        _blocks.recycle(names)


def empty(shape, dtype):
    """An uninitialized array; inside a worker it lives in shared memory, ready to send."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if _blocks is None or nbytes == 0:
        return np.empty(shape, dtype)
    return _blocks.take(nbytes).view[:nbytes].view(dtype).reshape(shape)


def _as_numpy(obj):
    if isinstance(obj, np.ndarray):
        return obj
    t = obj.detach() if obj.requires_grad else obj
    try:
        return t.numpy()
    except TypeError as e:
        raise TypeError(
            f"DataLoader workers can't send a {obj.dtype} tensor through shared memory (NumPy has no such "
            "dtype); convert it in the dataset (e.g. .float()) and back after loading"
        ) from e


class _Pickler(pickle.Pickler):
    """Pickles with tensors (and big arrays) replaced by their index in ``refs``."""

    def __init__(self, file):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.refs, self.ids = [], {}

    def persistent_id(self, o):
        if isinstance(o, kiln.Tensor) or (
            type(o) is np.ndarray and o.nbytes >= _INLINE_NDARRAY_BYTES and not o.dtype.hasobject
        ):
            key = id(o)
            if key not in self.ids:
                self.ids[key] = len(self.refs)
                self.refs.append(o)
            return self.ids[key]
        return None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, rebuild):
        super().__init__(file)
        self.rebuild = rebuild

    def persistent_load(self, pid):
        return self.rebuild(pid)


def pack(obj):
    """``(blocks, evicted, descriptors, payload)``: ``obj`` pickled with its array data in shared
    memory; ``blocks`` lists ``(name, size, pooled)`` of the blocks it uses."""
    # Module-level pickler classes: a class made per call would sit in a reference cycle
    # and keep this batch's shared-memory mappings alive until the cyclic GC ran.
    buf = io.BytesIO()
    pickler = _Pickler(buf)
    pickler.dump(obj)
    refs = pickler.refs
    del pickler
    if refs and _blocks is None:
        raise RuntimeError("shared_memory.pack works only inside DataLoader workers")
    descs, copies, total, used = [], [], 0, {}
    for o in refs:
        arr = _as_numpy(o)
        tensor = isinstance(o, kiln.Tensor)
        grad = tensor and o.requires_grad
        found = _blocks.find(arr.ctypes.data, arr.nbytes) if arr.nbytes else None
        if arr.nbytes == 0:
            descs.append(("empty", arr.dtype.str, arr.shape, tensor, grad))
        elif found is not None:
            block, offset = found
            used[block.name] = block
            descs.append(
                ("shm", block.name, offset, arr.dtype.str, arr.shape, arr.strides, tensor, grad)
            )
        else:
            copies.append((len(descs), arr, total, tensor, grad))
            descs.append(None)
            total += -(-arr.nbytes // _ALIGN) * _ALIGN
    if copies:
        block = _blocks.take(total)
        used[block.name] = block
        for i, arr, offset, tensor, grad in copies:
            dst = np.ndarray(arr.shape, arr.dtype, buffer=block.view, offset=offset)
            np.copyto(dst, arr)
            descs[i] = (
                "shm",
                block.name,
                offset,
                arr.dtype.str,
                arr.shape,
                dst.strides,
                tensor,
                grad,
            )
    blocks = tuple((b.name, b.size, b.pooled) for b in used.values())
    evicted = tuple(_blocks.evicted) if _blocks is not None else ()
    if _blocks is not None:
        _blocks.evicted.clear()
    return blocks, evicted, descs, buf.getvalue()


def array_bytes(packed):
    """Bytes of array data in a packed batch."""
    return sum(
        np.dtype(d[3]).itemsize * int(np.prod(d[4], dtype=np.int64))
        for d in packed[2]
        if d[0] == "shm"
    )


# -- the main process's side ----------------------------------------------------------------------


class Receiver:
    """The main process's side of one iterator's blocks: its mappings of the workers' pooled
    blocks and, per worker, the names of blocks whose batch is gone, to send back."""

    def __init__(self, num_workers):
        self.maps = {}  # pooled block name -> mmap
        self.returned = [collections.deque() for _ in range(num_workers)]

    def _forget(self, evicted):
        for name in evicted:
            self.maps.pop(name, None)

    def unpack(self, worker, packed):
        """The object the worker packed, its arrays mapped zero-copy from shared memory."""
        blocks, evicted, descs, payload = packed
        self._forget(evicted)
        roots = {}
        for name, size, pooled in blocks:  # map (and unlink) every block before anything can fail
            mm = self.maps.get(name)
            if mm is None:
                try:
                    mm = _map(name, size, populate=pooled)
                finally:
                    _unlink(name)  # both sides have it mapped: no name left to leak
                if pooled:
                    self.maps[name] = mm
            roots[name] = root = np.frombuffer(mm, np.uint8)
            if pooled:  # the block goes back to its worker when this batch's last array dies
                weakref.finalize(root, self.returned[worker].append, name)

        def rebuild(d):
            if d[0] == "empty":
                _, dtype, shape, tensor, grad = d
                arr = np.empty(shape, np.dtype(dtype))
            else:
                _, name, offset, dtype, shape, strides, tensor, grad = d
                arr = np.ndarray(
                    shape, np.dtype(dtype), buffer=roots[name], offset=offset, strides=strides
                )
            if not tensor:
                return arr
            t = kiln.from_numpy(arr)
            return t.requires_grad_() if grad else t

        return _Unpickler(io.BytesIO(payload), lambda pid: rebuild(descs[pid])).load()

    def discard(self, worker, packed):
        """Releases the blocks of a message that will not be unpacked."""
        blocks, evicted, _, _ = packed
        self._forget(evicted)
        for name, _, pooled in blocks:
            if pooled:
                self.returned[worker].append(name)
            else:
                _unlink(name)

    def take_returned(self, worker):
        """Names of ``worker``'s blocks that are free again (sent with its next task)."""
        q = self.returned[worker]
        return tuple(q.popleft() for _ in range(len(q)))

    def close(self):
        """Drops the mappings; those of batches still alive last as long as their arrays."""
        self.maps.clear()
