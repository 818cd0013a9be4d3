"""kiln.save / kiln.load: safetensors files, never pickle.

`kiln.save(obj, f)` writes a valid safetensors file: every tensor is a safetensors
entry (named by its path in `obj`, e.g. `layer.weight` or `opt.state.0.exp_avg`),
and the nesting and plain values live in the header's `__metadata__` as JSON
(see `_tree.py` for the encoding and Note [Shared storage]). Loading never runs
code from the file, and every file is treated as hostile (Note [Hostile files]).

Differences from torch.save/torch.load, on purpose:
- Only tensors, NumPy arrays, None, bool, int, float, str, lists, tuples and
  dicts (keyed by str, int, float, bool or None) are storable; anything else is
  refused with its location.
  dict subclasses (OrderedDict) load as dict; NumPy scalars load as Python numbers.
- Writes to a path are atomic and durable (temporary file, fsync, rename, fsync
  of the directory), and a checksum of the header and data is stored and
  verified on load (see Note [Checksum] in _safetensors.py).
- One object per file object: `load` reads `f` to its end.
- Loaded tensors are on the CPU unless `map_location` says otherwise; they do not
  remember the device they were saved from.

Note [Hostile files]: before reading data, the loader checks the header length
against a 100 MB limit and the file size, parses the JSON strictly (no duplicate
keys, no NaN constants), checks every dtype, shape and offset, and requires the
tensors to tile the data section exactly; it allocates only as much as the file
holds. The structure in the metadata is checked node by node the same way.
"""

import json
import os

from kiln import _C
from kiln.serialization import _safetensors as fmt
from kiln.serialization._atomic import atomic_write
from kiln.serialization._convert import DTYPE_TO_KILN, numpy_to_tensor
from kiln.serialization._safetensors import ChecksumError, SafetensorsError
from kiln.serialization._tree import Decoder, Encoder, entry_of

__all__ = [
    "ChecksumError",
    "SafetensorsError",
    "check_storable",
    "load",
    "load_file",
    "save",
    "save_file",
]

FORMAT_KEY = "kiln.format"
STRUCTURE_KEY = "kiln.structure"
FORMAT_VERSION = "1"


def _is_path(f):
    return isinstance(f, (str, bytes, os.PathLike))


def _check_target(f, op, method):
    if not _is_path(f) and not callable(getattr(f, method, None)):
        raise TypeError(
            f"[{op}] expected a path or a binary file object with .{method}(), "
            f"got {type(f).__name__}")


def _write(entries, metadata, f, checksum="crc32"):
    _check_target(f, "kiln.save", "write")
    algorithm = f"{checksum}-pieces-16MiB"
    if algorithm not in fmt.PIECE_DIGESTS:
        raise ValueError(f"[kiln.save] checksum must be 'crc32' or 'sha256', got {checksum!r}")
    if _is_path(f):
        with atomic_write(f) as out:
            fmt.write(out, entries, metadata, algorithm, writeback=True)
    else:
        fmt.write(f, entries, metadata, algorithm)
        if hasattr(f, "flush"):
            f.flush()


def _read(f, verify, use_mmap=False):
    _check_target(f, "kiln.load", "read")
    try:
        if _is_path(f):
            with open(f, "rb", buffering=0) as fp:
                return fmt.read(fp, verify, use_mmap)
        return fmt.read(f, verify, use_mmap)
    except SafetensorsError as e:
        where = f" {os.fsdecode(f)!r}" if _is_path(f) else ""
        raise type(e)(f"[kiln.load] file{where}: {e}") from None


def save(obj, f, *, checksum="crc32"):
    """Save `obj` (a tensor, or nested dicts/lists/tuples of tensors, NumPy arrays and
    plain values) to `f`, a path or a writable binary file object. `checksum` picks the
    digest of the data pieces, "crc32" (fast) or "sha256" (Note [Checksum])."""
    encoder = Encoder("obj")
    try:
        structure = encoder.encode(obj)
        entries = encoder.entries()
    except (TypeError, ValueError) as e:
        raise type(e)(f"[kiln.save] {e}") from None
    metadata = {
        FORMAT_KEY: FORMAT_VERSION,
        STRUCTURE_KEY: json.dumps(structure, separators=(",", ":"), allow_nan=False),
    }
    _write(entries, metadata, f, checksum)


def check_storable(obj, name="obj"):
    """Raise the TypeError/ValueError `save` would raise for `obj`, naming the location
    as `name[...][...]` (walks the structure only; no tensor data is touched)."""
    Encoder(name).encode(obj)


def _device_mapper(map_location):
    if map_location is None:
        return lambda t: t
    if callable(map_location):
        return lambda t: map_location(t, "cpu")
    device = map_location if isinstance(map_location, _C.device) else _C.device(str(map_location))
    if device.type == "cpu":
        return lambda t: t
    return lambda t: t.to(device)


def load(f, map_location=None, *, mmap=False, verify_checksum=True):
    """Load an object saved by `kiln.save` from a path or binary file object.

    By default every tensor is read into memory of its own (in parallel threads) and
    the checksum verified as the data arrives: the tensors are then independent of the
    file, which may be truncated or rewritten at once. `mmap=True` (for paths and real
    files) maps the file instead, copy-on-write: tensors share pages with the OS cache
    and are read lazily, as safetensors.torch.load_file does, but a process that
    truncates the file in place (not kiln.save, which replaces files atomically) makes
    the next access to those tensors kill this process with SIGBUS. Combine with
    `verify_checksum=False` to skip reading the data at all at load time.

    A safetensors file written by another tool (safetensors.torch.save_file, say) loads
    as a dict of tensors in name order, as safetensors' own load_file returns it;
    entries of dtypes kiln lacks (U16, U32, U64) load as NumPy arrays.
    `map_location`: None or "cpu" keeps tensors on the CPU; a device (or its name)
    moves them there; a callable is called as `map_location(tensor, "cpu")`.
    Raises SafetensorsError (a ValueError) for malformed files and ChecksumError
    when the stored checksum does not match.
    """
    metadata, entries = _read(f, verify_checksum, mmap)
    to_device = _device_mapper(map_location)
    if STRUCTURE_KEY not in metadata:
        return _flat(entries, to_device)
    if metadata.get(FORMAT_KEY) != FORMAT_VERSION:
        raise SafetensorsError(
            f"[kiln.load] unsupported kiln format version {metadata.get(FORMAT_KEY)!r:.40}"
        )
    try:
        structure = fmt.parse_json(metadata[STRUCTURE_KEY], "kiln structure metadata")
        return Decoder(entries, to_device).decode(structure)
    except SafetensorsError as e:
        raise SafetensorsError(f"[kiln.load] {e}") from None


def _flat(entries, to_device):
    return {e.name: _plain_value(e, to_device) for e in sorted(entries, key=lambda e: e.name)}


def _plain_value(entry, to_device):
    if entry.dtype in DTYPE_TO_KILN:
        return to_device(numpy_to_tensor(entry.dtype, entry.data))
    return entry.data.copy()


def save_file(tensors, filename, metadata=None):
    """safetensors.torch.save_file's counterpart: a flat {name: tensor} dict and
    optional {str: str} metadata, written atomically (shared tensors are copied)."""
    if not isinstance(tensors, dict):
        raise TypeError(f"[save_file] tensors must be a dict, got {type(tensors).__name__}")
    entries = []
    for name, t in tensors.items():
        if not isinstance(name, str) or not isinstance(t, _C.Tensor):
            raise TypeError(
                f"[save_file] expected str -> Tensor, got {name!r:.60} -> {type(t).__name__}"
            )
        if name == "__metadata__":
            raise ValueError("[save_file] '__metadata__' is reserved by the format")
        entries.append(fmt.Entry(name, *entry_of(t)))
    if metadata is not None and not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise TypeError("[save_file] metadata must map str to str")
    _write(entries, metadata, filename)


def load_file(filename, device="cpu", *, mmap=False, verify_checksum=True):
    """safetensors.torch.load_file's counterpart: {name: tensor} in name order, ignoring
    any kiln structure."""
    _, entries = _read(filename, verify_checksum, mmap)
    return _flat(entries, _device_mapper(device))
