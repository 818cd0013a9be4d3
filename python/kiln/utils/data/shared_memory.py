"""Shared-memory transport of batches from worker processes to the main process.

A worker writes each tensor's (and large NumPy array's) data into a file in
/dev/shm and sends only a small pickled message: the batch's structure with
every array replaced by a descriptor (file, offset, dtype, shape, strides).
The main process maps the file, unlinks it at once, and rebuilds the arrays
zero-copy (``kiln.from_numpy(np.ndarray(buffer=mapping))``); the mapping lives
as long as the last tensor that uses it.

Inside a worker, :func:`empty` hands out arrays that already live in shared
memory, so ``default_collate`` stacks a batch straight into its final place and
:func:`pack` only references it (no second copy). Every file name starts with
the iterator's prefix, so whatever a dead or interrupted worker leaves behind is
removed by :func:`remove_prefixed`.
"""

import io
import mmap
import os
import pickle

import numpy as np

import kiln

SHM_DIR = "/dev/shm"
_ALIGN = 64
_INLINE_NDARRAY_BYTES = 4096  # smaller NumPy arrays travel inside the pickle (tensors never do)


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


def remove_prefixed(prefix):
    """Unlinks every shared-memory file whose name starts with ``prefix``."""
    try:
        names = os.listdir(SHM_DIR)
    except OSError:
        return
    for name in names:
        if name.startswith(prefix):
            try:
                os.unlink(os.path.join(SHM_DIR, name))
            except OSError:
                pass


class _WorkerBlocks:
    """A worker's shared-memory files not yet handed to the main process."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.counter = 0
        self.pending = []  # (start address, nbytes, name)

    def create(self, nbytes):
        # Pages are allocated when first written (ftruncate, not posix_fallocate: reserving
        # them up front costs milliseconds per batch). So check the room first; a tmpfs that
        # fills up anyway between this check and the write kills the worker with SIGBUS,
        # which the main process reports with that hint.
        free = free_bytes()
        if nbytes > free:
            raise RuntimeError(
                f"DataLoader worker is out of shared memory: a block of {nbytes:,} bytes does not "
                f"fit in {SHM_DIR} ({free:,} bytes free). Make {SHM_DIR} larger (e.g. docker run "
                "--shm-size), or lower num_workers, prefetch_factor or batch_size."
            )
        name = f"{self.prefix}{self.counter}"
        self.counter += 1
        fd = os.open(os.path.join(SHM_DIR, name), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, nbytes)
            mm = mmap.mmap(fd, nbytes)
        finally:
            os.close(fd)
        view = np.frombuffer(mm, np.uint8)
        self.pending.append((view.ctypes.data, nbytes, name))
        return name, view

    def find(self, address, nbytes):
        for start, size, name in self.pending:
            if start <= address and address + nbytes <= start + size:
                return name, size, address - start
        return None

    def release_unsent(self, sent):
        """Unlinks this task's files that no message references (a failed or filtered batch)."""
        for _, _, name in self.pending:
            if name not in sent:
                try:
                    os.unlink(os.path.join(SHM_DIR, name))
                except OSError:
                    pass
        self.pending.clear()


_blocks = None  # set in worker processes only


def enable_in_worker(prefix):
    global _blocks
    _blocks = _WorkerBlocks(prefix)


def release_unsent(sent=()):
    if _blocks is not None:
        _blocks.release_unsent(set(sent))


def empty(shape, dtype):
    """An uninitialized array; inside a worker it lives in shared memory, ready to send."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if _blocks is None or nbytes == 0:
        return np.empty(shape, dtype)
    _, view = _blocks.create(nbytes)
    return view.view(dtype).reshape(shape)


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
    """(descriptors, payload): ``obj`` pickled with array data moved to shared memory."""
    # Module-level pickler classes: a class made per call would sit in a reference cycle
    # and keep this batch's shared-memory mappings alive until the cyclic GC ran.
    buf = io.BytesIO()
    pickler = _Pickler(buf)
    pickler.dump(obj)
    refs = pickler.refs
    del pickler
    descs, copies, total = [], [], 0
    for o in refs:
        arr = _as_numpy(o)
        tensor = isinstance(o, kiln.Tensor)
        grad = tensor and o.requires_grad
        found = (
            _blocks.find(arr.ctypes.data, arr.nbytes)
            if (_blocks is not None and arr.nbytes)
            else None
        )
        if arr.nbytes == 0:
            descs.append(("empty", arr.dtype.str, arr.shape, tensor, grad))
        elif found is not None:
            name, size, offset = found
            descs.append(
                ("shm", name, size, offset, arr.dtype.str, arr.shape, arr.strides, tensor, grad)
            )
        else:
            copies.append((len(descs), arr, total))
            descs.append(None)
            total += -(-arr.nbytes // _ALIGN) * _ALIGN
    if copies:
        if _blocks is None:
            raise RuntimeError("shared_memory.pack copies arrays only inside DataLoader workers")
        name, view = _blocks.create(total)
        for i, arr, offset in copies:
            dst = np.ndarray(arr.shape, arr.dtype, buffer=view, offset=offset)
            np.copyto(dst, arr)
            grad = isinstance(refs[i], kiln.Tensor) and refs[i].requires_grad
            descs[i] = (
                "shm",
                name,
                total,
                offset,
                arr.dtype.str,
                arr.shape,
                dst.strides,
                isinstance(refs[i], kiln.Tensor),
                grad,
            )
    return descs, buf.getvalue()


def block_names(descs):
    return {d[1] for d in descs if d[0] == "shm"}


def _attach(name, nbytes):
    path = os.path.join(SHM_DIR, name)
    fd = os.open(path, os.O_RDWR)
    try:
        return mmap.mmap(fd, nbytes)
    finally:
        os.close(fd)
        os.unlink(path)


def discard(descs):
    """Unlinks the files of a message that will not be unpacked."""
    for name in block_names(descs):
        try:
            os.unlink(os.path.join(SHM_DIR, name))
        except OSError:
            pass


def unpack(descs, payload):
    """The object :func:`pack` sent, its arrays mapped zero-copy from shared memory."""
    maps = {}
    for d in descs:  # map (and so unlink) every file before anything can fail
        if d[0] == "shm" and d[1] not in maps:
            maps[d[1]] = _attach(d[1], d[2])

    def rebuild(d):
        if d[0] == "empty":
            _, dtype, shape, tensor, grad = d
            arr = np.empty(shape, np.dtype(dtype))
        else:
            _, name, _, offset, dtype, shape, strides, tensor, grad = d
            arr = np.ndarray(
                shape, np.dtype(dtype), buffer=maps[name], offset=offset, strides=strides
            )
        if not tensor:
            return arr
        t = kiln.from_numpy(arr)
        return t.requires_grad_() if grad else t

    return _Unpickler(io.BytesIO(payload), lambda pid: rebuild(descs[pid])).load()
