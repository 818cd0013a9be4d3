"""The safetensors file format, read and written with NumPy buffers.

A file is: an 8-byte little-endian header length N, N bytes of UTF-8 JSON
(`{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
{str: str}}`, padded with spaces), then the tensors' bytes. Offsets are
relative to the end of the header; the tensors tile the data section exactly,
in offset order, with no gaps or overlaps.

The reader treats every file as hostile (Note [Hostile files]): each length and
offset is checked against the file's size before anything is allocated or read.
"""

import fcntl
import hashlib
import io
import json
import mmap
import os
import stat
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from kiln import _C
from kiln.serialization._convert import DTYPE_TO_KILN

_CPU = _C.device("cpu")

# safetensors dtype string -> NumPy dtype of its bytes (BF16 travels as raw uint16 bits).
DTYPES = {
    "BOOL": np.dtype("bool"),
    "U8": np.dtype("uint8"),
    "I8": np.dtype("int8"),
    "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"),
    "F32": np.dtype("<f4"),
    "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"),
    "F64": np.dtype("<f8"),
}
NUMPY_TO_DTYPE = {v: k for k, v in DTYPES.items() if k != "BF16"}

MAX_HEADER_BYTES = 100_000_000
MAX_DIMS = 64
CHECKSUM_KEY = "kiln.checksum"
CHECKSUM_ALGORITHM_KEY = "kiln.checksum_algorithm"
# Note [Checksum]: the data is cut into pieces (each tensor into 16 MiB pieces) that
# are hashed in parallel; the stored checksum is SHA-256 over the canonical header and
# the pieces' digests. A checksum stored in the file itself can only catch accidents
# (truncation, bit rot, a partial copy), never deliberate tampering (the tamperer
# rewrites it), so the default piece digest is CRC-32, zlib's, computed by _C._crc32
# with carry-less multiplication (~10x zlib.crc32 with AVX-512, ~2.5x with PCLMULQDQ
# alone). Loading from a regular file reads the pieces with pread in threads
# (_C._read_pieces) and hashes each 256 KiB chunk right after it arrived, while it is
# in cache, so the checksum costs little over the copy itself: loads verify it by
# default.
PIECE_DIGESTS = {
    "crc32-pieces-16MiB": lambda view: _C._crc32(view).to_bytes(4, "little"),
    "sha256-pieces-16MiB": lambda view: hashlib.sha256(view).digest(),
}
DEFAULT_ALGORITHM = "crc32-pieces-16MiB"
PIECE_BYTES = 16 << 20
_ALIGN = 64  # loaded tensors start on cache-line (and AVX-512) boundaries
_PARALLEL_MIN_BYTES = 32 << 20


class SafetensorsError(ValueError):
    """A file is not a valid safetensors file (truncated, corrupted or hostile)."""


class ChecksumError(SafetensorsError):
    """A kiln file's data or header does not match the checksum stored in it."""


class Entry:
    """One tensor of a file: its name, safetensors dtype string, shape and raw bytes."""

    __slots__ = ("data", "dtype", "name", "shape")

    def __init__(self, name, dtype, shape, data):
        self.name, self.dtype, self.shape, self.data = name, dtype, tuple(shape), data

    @property
    def nbytes(self):
        return _numel(self.shape) * DTYPES[self.dtype].itemsize


def _numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


# --------------------------------------------------------------------- checksum


def _pieces(layout):
    """(begin, end) byte ranges of the data section that are hashed separately:
    each tensor cut into PIECE_BYTES pieces, in offset order."""
    out = []
    for begin, end in layout:
        for start in range(begin, end, PIECE_BYTES):
            out.append((start, min(start + PIECE_BYTES, end)))
    return out


def _combine(table, metadata, parts):
    """The file's checksum: SHA-256 over a canonical digest of the tensor table and
    metadata (less the checksum itself) and the pieces' digests `parts`."""
    meta = {k: v for k, v in metadata.items() if k != CHECKSUM_KEY}
    text = json.dumps([table, meta], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(hashlib.sha256(text.encode()).digest() + b"".join(parts)).hexdigest()


def _compare(digest, expected):
    if digest != expected:
        raise ChecksumError(
            "checksum mismatch: the file's data or header was altered or corrupted "
            f"(stored {expected[:16]}..., computed {digest[:16]}...)"
        )


class _Hasher:
    """Hashes pieces in worker threads (hashlib releases the GIL) while the caller
    reads or writes, then combines them in order."""

    def __init__(self, algorithm, total_bytes):
        self._digest = PIECE_DIGESTS[algorithm]
        workers = min(4, os.cpu_count() or 1) if total_bytes >= _PARALLEL_MIN_BYTES else 0
        self._pool = ThreadPoolExecutor(workers) if workers > 1 else None
        self._digests = []

    def add(self, view):
        if self._pool is None:
            self._digests.append(self._digest(view))
        else:
            self._digests.append(self._pool.submit(self._digest, view))

    def finish(self):
        """The pieces' digests, in order."""
        try:
            return [d if isinstance(d, bytes) else d.result() for d in self._digests]
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)

    def abandon(self):
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


# ----------------------------------------------------------------------- writer


def _layout(entries):
    """Order entries by alignment (largest itemsize first, so every tensor is aligned
    when the data section starts at a multiple of 8), then by name; assign offsets."""
    order = sorted(entries, key=lambda e: (-DTYPES[e.dtype].itemsize, e.name))
    table, ranges, offset = {}, [], 0
    for e in order:
        end = offset + e.nbytes
        table[e.name] = {"dtype": e.dtype, "shape": list(e.shape), "data_offsets": [offset, end]}
        ranges.append((offset, end))
        offset = end
    return order, table, ranges


def _encode_header(table, metadata):
    header = {"__metadata__": metadata} if metadata else {}
    header.update(table)
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    raw += b" " * (-(8 + len(raw)) % 8)
    return len(raw).to_bytes(8, "little") + raw


def write(f, entries, metadata, algorithm=DEFAULT_ALGORITHM, writeback=False):
    """Write `entries` (Entry objects whose data is a NumPy array) to the binary file
    object `f`. A checksum of the header and data (Note [Checksum]) is stored in the
    metadata; on seekable files it is computed while the data is written and patched
    into the header after. `writeback`: the caller will fsync `f`, so start writing
    the data to disk while the rest is still being written."""
    metadata = dict(metadata or {})
    order, table, ranges = _layout(entries)
    views = [memoryview(np.ascontiguousarray(e.data).reshape(-1).view(np.uint8)) for e in order]
    for e, v in zip(order, views):
        if len(v) != e.nbytes:
            raise ValueError(f"tensor {e.name!r}: {len(v)} bytes of data for {e.nbytes}")
    metadata[CHECKSUM_ALGORITHM_KEY] = algorithm
    # Note [Sequential writes]: the data goes out in order, one whole tensor per write.
    # Writing 256 KiB pieces with pwrite from several threads was no faster here, and left
    # the new file in the page cache as small folios that later mmap reads of it fault
    # through at half the speed (measured on Linux 6.18, ext4-like VM disk).
    fd = _plain_fd(f)
    appending = fd is not None and _appends(fd)  # writes go to the end, wherever we seek
    hasher = _Hasher(algorithm, ranges[-1][1] if ranges else 0)
    try:
        for pieces in _split(views, ranges):
            for p in pieces:
                hasher.add(p)
        seekable = _seekable(f) and not appending
        if seekable:
            start = f.tell()
            metadata[CHECKSUM_KEY] = "0" * 64  # same length as the digest patched in below
            f.write(_encode_header(table, metadata))
            _write_views(f, views, fd if writeback else None)
        digest = _combine(table, metadata, hasher.finish())
    except BaseException:
        hasher.abandon()
        raise
    metadata[CHECKSUM_KEY] = digest
    header = _encode_header(table, metadata)
    if seekable:
        end = f.tell()
        f.seek(start)
        f.write(header)
        f.seek(end)
    else:
        f.write(header)
        _write_views(f, views, fd if writeback else None)


# Writes go out in pieces of this size so that disk writeback of one piece overlaps the
# copy of the next into the page cache.
_WRITE_PIECE = 16 << 20


def _write_views(f, views, writeback_fd):
    for v in views:
        for i in range(0, len(v), _WRITE_PIECE):
            f.write(v[i : i + _WRITE_PIECE])
            if writeback_fd is not None:
                f.flush()
                end = f.tell()
                _C._start_writeback(writeback_fd, max(0, end - _WRITE_PIECE), _WRITE_PIECE)


def _appends(fd):
    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND)


def _split(views, ranges):
    """Per tensor, its bytes cut at the same places as _pieces."""
    for v, (begin, end) in zip(views, ranges):
        yield [v[s - begin : e - begin] for s, e in _pieces([(begin, end)])]


def _seekable(f):
    try:
        return f.seekable()
    except (AttributeError, ValueError, OSError):
        return False


# ----------------------------------------------------------------------- reader


def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise SafetensorsError(f"duplicate key {k!r} in the JSON header")
        out[k] = v
    return out


def _reject_constant(name):
    raise SafetensorsError(f"invalid JSON constant {name} in the header")


def parse_json(text, what):
    """json.loads that rejects duplicate keys, NaN/Infinity and absurd nesting."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except SafetensorsError:
        raise
    except RecursionError:
        raise SafetensorsError(f"{what} is nested too deeply") from None
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        raise SafetensorsError(f"{what} is not valid JSON: {e}") from None


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _check_entry(name, info, data_len):
    if not isinstance(info, dict):
        raise SafetensorsError(f"tensor {name!r}: header entry must be an object, got {info!r:.80}")
    keys = set(info)
    if keys != {"dtype", "shape", "data_offsets"}:
        raise SafetensorsError(
            f"tensor {name!r}: header entry needs exactly dtype, shape and data_offsets, "
            f"got {sorted(keys)}"
        )
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise SafetensorsError(
            f"tensor {name!r}: unsupported dtype {dtype!r:.40} (supported: {', '.join(DTYPES)})"
        )
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_DIMS
        or not all(_is_int(s) and 0 <= s < 2**63 for s in shape)
    ):
        raise SafetensorsError(
            f"tensor {name!r}: shape must be a list of at most {MAX_DIMS} non-negative ints, "
            f"got {shape!r:.80}"
        )
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(_is_int(o) for o in offsets)
        and 0 <= offsets[0] <= offsets[1] <= data_len
    ):
        raise SafetensorsError(
            f"tensor {name!r}: data_offsets {offsets!r:.80} are not a range within the "
            f"{data_len}-byte data section (truncated file or lying header)"
        )
    itemsize = DTYPES[dtype].itemsize
    if _numel(max(s, 1) for s in shape) * itemsize >= 2**62:
        # even with a zero dim, NumPy and kiln need the other dims' product to fit
        raise SafetensorsError(f"tensor {name!r}: shape {shape} is too large")
    nbytes = _numel(shape) * itemsize
    if nbytes != offsets[1] - offsets[0]:
        raise SafetensorsError(
            f"tensor {name!r}: shape {shape} of {dtype} needs {nbytes} bytes but "
            f"data_offsets {offsets} span {offsets[1] - offsets[0]}"
        )
    return dtype, tuple(shape), (offsets[0], offsets[1])


def parse_header(raw, data_len):
    """Validate a header; returns (metadata dict, [(name, dtype, shape, (begin, end))]
    in offset order)."""
    if raw[:1] != b"{":
        raise SafetensorsError("header does not start with '{' (not a safetensors file?)")
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as e:
        raise SafetensorsError(f"header is not valid UTF-8: {e}") from None
    header = parse_json(text, "header")
    if not isinstance(header, dict):
        raise SafetensorsError("header must be a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise SafetensorsError("__metadata__ must map strings to strings")
    entries = [(name, *_check_entry(name, info, data_len)) for name, info in header.items()]
    entries.sort(key=lambda e: (e[3][0], e[3][1]))
    expected = 0
    for name, _, _, (begin, end) in entries:
        if begin != expected:
            what = "overlaps the previous tensor" if begin < expected else "leaves a gap before it"
            raise SafetensorsError(
                f"tensor {name!r}: data_offsets [{begin}, {end}] {what} (expected to start at "
                f"{expected}); tensors must tile the data section in order"
            )
        expected = end
    if expected != data_len:
        raise SafetensorsError(
            f"tensors cover {expected} bytes but the data section has {data_len} "
            "(trailing bytes or a truncated file)"
        )
    return metadata, entries


def _source_size(f):
    """Bytes from the current position to the end of `f`, or None if not seekable."""
    if not _seekable(f):
        return None
    pos = f.tell()
    try:
        return os.fstat(f.fileno()).st_size - pos
    except (AttributeError, OSError, ValueError):
        end = f.seek(0, os.SEEK_END)
        f.seek(pos)
        return end - pos


def _read_exact(f, view):
    got = 0
    while got < len(view):
        n = f.readinto(view[got:])
        if not n:
            raise SafetensorsError(
                f"file ended after {got} of {len(view)} expected bytes (truncated?)"
            )
        got += n


def read(f, verify=True, use_mmap=False):
    """Read a safetensors file from a binary file object; returns (metadata, [Entry]).

    From a regular file, each entry's data is a new kiln tensor of its own (a NumPy array
    for dtypes kiln lacks and for BF16, see _destination), filled by _C._read_pieces:
    threads read the pieces with pread(2) and hash each while it is in cache. The data is
    a copy: truncating or rewriting the file later cannot affect (or crash, SIGBUS) the
    loaded tensors. With `use_mmap` the data are NumPy views into a private
    copy-on-write mapping of the file instead: nothing is read until used (unless
    verifying), writes never reach the file, but the file must not shrink while they
    live. Other streams are read into one buffer. With `verify`, a stored kiln checksum
    is checked."""
    start = f.tell() if _seekable(f) else 0
    size = _source_size(f)
    if size is None:  # a pipe or other stream: its length is only known once read
        f = io.BytesIO(f.read())
        size = len(f.getbuffer())
    if size < 8:
        raise SafetensorsError(f"file has {size} bytes; a safetensors file has at least 8")
    prefix = bytearray(8)
    _read_exact(f, memoryview(prefix))
    n = int.from_bytes(prefix, "little")
    if n > MAX_HEADER_BYTES:
        raise SafetensorsError(f"header length {n} exceeds the {MAX_HEADER_BYTES}-byte limit")
    if n > size - 8:
        raise SafetensorsError(
            f"header length {n} exceeds the {size - 8} bytes after the length field (truncated?)"
        )
    raw = bytearray(n)
    _read_exact(f, memoryview(raw))
    data_len = size - 8 - n
    metadata, layout = parse_header(raw, data_len)

    expected = None
    if verify and CHECKSUM_KEY in metadata:
        algorithm = metadata.get(CHECKSUM_ALGORITHM_KEY)
        if algorithm not in PIECE_DIGESTS:
            raise SafetensorsError(f"unknown checksum algorithm {algorithm!r:.60}")
        expected = metadata[CHECKSUM_KEY]

    base = start + 8 + n
    buf = _map(f, base, data_len) if use_mmap else None
    if buf is not None:
        if expected is not None:
            _check_digest(_piece_views(buf, layout), layout, metadata, expected)
        return metadata, _entries_in(buf, layout)
    fd = _plain_fd(f)
    if fd is not None:
        entries = _read_entries(fd, base, layout, metadata, expected)
        f.seek(base + data_len)
        return metadata, entries
    buf = _aligned_empty(data_len)
    _read_exact(f, memoryview(buf))
    if expected is not None:
        _check_digest(_piece_views(buf, layout), layout, metadata, expected)
    return metadata, _entries_in(buf, layout)


def _entries_in(buf, layout):
    return [
        Entry(name, dtype, shape, buf[begin:end].view(DTYPES[dtype]).reshape(shape))
        for name, dtype, shape, (begin, end) in layout
    ]


def _piece_views(buf, layout):
    return [buf[b:e] for b, e in _pieces([rng for *_, rng in layout])]


def _aligned_empty(nbytes):
    raw = np.empty(nbytes + _ALIGN, dtype=np.uint8)
    skip = -raw.ctypes.data % _ALIGN
    return raw[skip : skip + nbytes]


def _plain_fd(f):
    """The descriptor of a regular file whose bytes are exactly what `f` reads or
    writes, else None (a GzipFile, say, has the fileno of its compressed file)."""
    if not isinstance(f, (io.FileIO, io.BufferedReader, io.BufferedWriter, io.BufferedRandom)):
        return None
    try:
        fd = f.fileno()
        return fd if stat.S_ISREG(os.fstat(fd).st_mode) else None
    except (OSError, ValueError):
        return None


def _destination(dtype, shape):
    """(new uninitialized data for an entry, its bytes as a flat uint8 array). A kiln
    tensor when kiln has the dtype: each tensor owns its memory, from kiln's allocator
    like any other tensor's, so keeping one tensor of a checkpoint does not keep the
    rest alive."""
    kiln_dtype = DTYPE_TO_KILN.get(dtype)
    if kiln_dtype is not None and dtype != "BF16":  # BF16 is converted via NumPy
        data = _C.empty(list(shape), kiln_dtype, _CPU)
        flat = data.numpy()
    else:
        data = flat = np.empty(shape, dtype=DTYPES[dtype])
    return data, flat.reshape(-1).view(np.uint8)


def _read_entries(fd, base, layout, metadata, expected):
    """Entries whose data is read from file offset `base` on, verifying the checksum
    `expected` (when not None) as the pieces arrive."""
    entries, pieces = [], []
    for name, dtype, shape, (begin, end) in layout:
        data, flat = _destination(dtype, shape)
        entries.append(Entry(name, dtype, shape, data))
        pieces += [(flat[b - begin : e - begin], base + b) for b, e in _pieces([(begin, end)])]
    crc = expected is not None and metadata.get(CHECKSUM_ALGORITHM_KEY) == DEFAULT_ALGORITHM
    try:
        crcs = _C._read_pieces(fd, pieces, crc)
    except ValueError as e:  # the file shrank since its size was taken
        raise SafetensorsError(str(e)) from None
    if crc:
        parts = [c.to_bytes(4, "little") for c in crcs]
        _compare(_combine(_table_of(layout), metadata, parts), expected)
    elif expected is not None:
        _check_digest([v for v, _ in pieces], layout, metadata, expected)
    return entries


def _map(f, offset, length):
    """A writable private mapping of `length` bytes of `f` from `offset` as a uint8
    array, or None when `f` is not a mappable file."""
    try:
        fd = f.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    if length == 0:
        return np.empty(0, dtype=np.uint8)
    try:
        mm = mmap.mmap(fd, offset + length, access=mmap.ACCESS_COPY)
    except (OSError, ValueError):
        return None
    return np.frombuffer(mm, dtype=np.uint8, count=length, offset=offset)


def _check_digest(views, layout, metadata, expected):
    """Hash the pieces' bytes `views` (in _pieces order) in threads and compare."""
    hasher = _Hasher(metadata[CHECKSUM_ALGORITHM_KEY], sum(len(v) for v in views))
    try:
        for v in views:
            hasher.add(v)
        parts = hasher.finish()
    except BaseException:
        hasher.abandon()
        raise
    _compare(_combine(_table_of(layout), metadata, parts), expected)


def _table_of(layout):
    """The header's tensor table, as the writer hashed it, from parse_header's layout."""
    return {
        name: {"dtype": d, "shape": list(s), "data_offsets": list(r)} for name, d, s, r in layout
    }
