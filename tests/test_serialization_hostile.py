"""kiln.load on hostile files: every malformed input is a clear ValueError, never a
crash, hang or huge allocation; a killed kiln.save leaves the previous file intact."""

import json
import os
import signal
import struct
import subprocess
import sys

import kiln
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kiln.serialization import ChecksumError, SafetensorsError

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(kiln.__file__)))


def small_file(tmp_path):
    path = tmp_path / "small.safetensors"
    obj = {"w": kiln.ones(2, 3), "i": kiln.zeros(2, dtype=kiln.int64), "h": [1, 2.5, None]}
    kiln.save(obj, path)
    return path.read_bytes()


def build(header, data=b"", length=None):
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(raw) if length is None else length
    return struct.pack("<Q", n) + raw + data


def load_bytes(tmp_path, blob, **kw):
    path = tmp_path / "h.safetensors"
    path.write_bytes(blob)
    return kiln.load(path, **kw)


def rejects(tmp_path, blob, match, **kw):
    with pytest.raises(SafetensorsError, match=match) as info:
        load_bytes(tmp_path, blob, **kw)
    assert str(info.value).startswith("[kiln.load]")


def test_valid_small_file_loads(tmp_path):
    out = load_bytes(tmp_path, small_file(tmp_path))
    assert out["h"] == [1, 2.5, None] and out["w"].sum().item() == 6


@pytest.mark.parametrize("mmap", [False, True], ids=["read", "mmap"])
def test_truncated_at_every_byte_offset(tmp_path, mmap):
    blob = small_file(tmp_path)
    assert len(blob) < 1200
    for cut in range(len(blob)):
        with pytest.raises(SafetensorsError) as info:
            load_bytes(tmp_path, blob[:cut], mmap=mmap)
        msg = str(info.value)
        assert any(
            w in msg
            for w in (
                "at least 8",
                "exceeds",
                "data section",
                "JSON",
                "truncated",
                "UTF-8",
                "start with",
            )
        ), (cut, msg)


def test_appended_bytes_are_rejected(tmp_path):
    rejects(tmp_path, small_file(tmp_path) + b"\0", "trailing bytes")


F32 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize(
    "header, data, match",
    [
        ({"a": {**F32, "data_offsets": [0, 16]}}, b"\0" * 8, "not a range within"),
        ({"a": {**F32, "data_offsets": [8, 0]}}, b"\0" * 8, "not a range within"),
        ({"a": {**F32, "data_offsets": [-8, 0]}}, b"\0" * 8, "not a range within"),
        ({"a": {**F32, "data_offsets": [0, 8.0]}}, b"\0" * 8, "not a range within"),
        ({"a": {**F32, "data_offsets": [0, 2**70]}}, b"\0" * 8, "not a range within"),
        ({"a": {**F32, "data_offsets": [0]}}, b"\0" * 8, "not a range within"),
        ({"a": {**F32, "shape": [3]}}, b"\0" * 8, r"needs 12 bytes but data_offsets \[0, 8\]"),
        ({"a": {**F32, "shape": [2**40, 2**40]}}, b"\0" * 8, "too large"),
        ({"a": {**F32, "shape": [2**20, 2**20]}}, b"\0" * 8, "needs 4398046511104 bytes"),
        ({"a": {**F32, "shape": [-2, -1]}}, b"\0" * 8, "non-negative ints"),
        ({"a": {**F32, "shape": [2.0]}}, b"\0" * 8, "non-negative ints"),
        ({"a": {**F32, "shape": [True, 2]}}, b"\0" * 8, "non-negative ints"),
        ({"a": {**F32, "shape": [2**64, 0]}}, b"", "non-negative ints"),
        ({"a": {**F32, "shape": [1] * 65 + [2]}}, b"\0" * 8, "at most 64"),
        ({"a": {**F32, "shape": "2"}}, b"\0" * 8, "non-negative ints"),
        ({"a": {**F32, "dtype": "F128"}}, b"\0" * 8, "unsupported dtype 'F128'"),
        ({"a": {**F32, "dtype": "float32"}}, b"\0" * 8, "unsupported dtype"),
        ({"a": {**F32, "dtype": 4}}, b"\0" * 8, "unsupported dtype"),
        ({"a": {**F32, "dtype": None}}, b"\0" * 8, "unsupported dtype"),
        ({"a": {**F32, "extra": 1}}, b"\0" * 8, "exactly dtype, shape and data_offsets"),
        ({"a": {"dtype": "F32", "shape": [2]}}, b"\0" * 8, "exactly dtype"),
        ({"a": [1, 2]}, b"", "must be an object"),
        ({"a": F32, "b": {**F32, "data_offsets": [4, 12]}}, b"\0" * 12, "overlaps"),
        ({"a": F32, "b": F32}, b"\0" * 8, "overlaps"),
        ({"a": F32, "b": {**F32, "data_offsets": [12, 20]}}, b"\0" * 20, "gap"),
        ({"a": {**F32, "data_offsets": [4, 12]}}, b"\0" * 12, "gap"),
        ({"a": F32}, b"\0" * 12, "trailing bytes"),
        ({"__metadata__": {"k": 1}, "a": F32}, b"\0" * 8, "strings to strings"),
        ({"__metadata__": ["x"]}, b"", "strings to strings"),
        ([1, 2], b"", "start with"),
        ("just a string", b"", "start with"),
    ],
)
def test_lying_headers(tmp_path, header, data, match):
    rejects(tmp_path, build(header, data), match)


@pytest.mark.parametrize(
    "raw, match",
    [
        (b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}', "not valid JSON"),
        (b'{"a": 1, "a": 2}', "duplicate key 'a'"),
        (
            b'{"a": {"dtype": "F32", "dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}',
            "duplicate key 'dtype'",
        ),
        (b'{"a": NaN}', "invalid JSON constant NaN"),
        (b'{"a": \xff\xfe}', "UTF-8"),
        (b"{" + b'"a":' * 1 + b"[" * 200_000 + b"]" * 200_000 + b"}", "nested too deeply"),
        (b"\0" * 16, "start with"),
        (b"", "start with"),
    ],
)
def test_bad_json(tmp_path, raw, match):
    rejects(tmp_path, build(raw), match)


def test_oversized_and_lying_header_lengths(tmp_path):
    rejects(tmp_path, build(b"{}", length=2**64 - 1), "exceeds the 100000000-byte limit")
    rejects(tmp_path, build(b"{}", length=100_000_001), "exceeds the 100000000-byte limit")
    rejects(tmp_path, build(b"{}", length=1000), "exceeds the 2 bytes")
    rejects(tmp_path, b"\x01\x00\x00", "at least 8")


def test_empty_and_zero_size_tensors_allocate_nothing(tmp_path):
    assert load_bytes(tmp_path, build(b"{}")) == {}
    header = {"a": {"dtype": "F64", "shape": [0, 2**40], "data_offsets": [0, 0]}}
    out = load_bytes(tmp_path, build(header))
    assert tuple(out["a"].shape) == (0, 2**40) and out["a"].numel() == 0
    header = {"a": {"dtype": "F64", "shape": [0, 2**62], "data_offsets": [0, 0]}}
    rejects(tmp_path, build(header), "too large")


def kiln_file(structure, tensors=None):
    """A kiln-format file with a hand-written structure (no checksum)."""
    header, data, offset = {}, b"", 0
    for name, arr in (tensors or {}).items():
        b = np.ascontiguousarray(arr).tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + len(b)],
        }
        data, offset = data + b, offset + len(b)
    header["__metadata__"] = {
        "kiln.format": "1",
        "kiln.structure": structure if isinstance(structure, str) else json.dumps(structure),
    }
    return build(header, data)


W = {"w": np.arange(6, dtype=np.float32)}


@pytest.mark.parametrize(
    "structure, match",
    [
        ({"t": "tensor", "k": "missing"}, "missing tensor 'missing'"),
        ({"t": "tensor", "k": 5}, "missing tensor"),
        ({"t": "tensor", "k": "w", "view": [[7], [1], 0]}, "out of bounds"),
        ({"t": "tensor", "k": "w", "view": [[2], [1], 5]}, "out of bounds"),
        ({"t": "tensor", "k": "w", "view": [[0], [1], 99]}, "out of bounds"),
        ({"t": "tensor", "k": "w", "view": [[2, 2], [1], 0]}, "malformed"),
        ({"t": "tensor", "k": "w", "view": [[2], [-1], 3]}, "malformed"),
        ({"t": "tensor", "k": "w", "view": [[2], [2**62], 0]}, "malformed"),
        ({"t": "tensor", "k": "w", "view": "x"}, "malformed"),
        ({"t": "pickle", "v": "os.system"}, "bad structure node"),
        ({"t": "dict", "v": [1]}, "bad structure node"),
        ({"t": "float", "v": "1e999x"}, "bad structure node"),
        ({"v": 1}, "bad structure node"),
        ('{"t": "dict", "v": {"a": 1, "a": 2}}', "duplicate key"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("[" * 300 + "]" * 300, "nested more than 200"),
        ("{not json", "not valid JSON"),
    ],
)
def test_lying_structure(tmp_path, structure, match):
    rejects(tmp_path, kiln_file(structure, W), match)


def test_unknown_format_version_and_checksum_algorithm(tmp_path):
    blob = kiln_file({"t": "tensor", "k": "w"}, W).replace(
        b'"kiln.format": "1"', b'"kiln.format": "9"'
    )
    rejects(tmp_path, blob, "unsupported kiln format version '9'")
    blob = small_file(tmp_path).replace(b"crc32-pieces-16MiB", b"md5xx-pieces-16MiB")
    rejects(tmp_path, blob, "unknown checksum algorithm")


def test_repeated_references_do_not_multiply_memory(tmp_path):
    big = {"w": np.zeros(1 << 20, dtype=np.float32)}
    for kind in ("tensor", "ndarray"):
        blob = kiln_file([{"t": kind, "k": "w"}] * 10_000, big)  # one 4 MB entry, 10,000 uses
        out = load_bytes(tmp_path, blob)
        assert len(out) == 10_000 and all(x is out[0] for x in out)


def test_hand_written_views_load(tmp_path):
    out = load_bytes(
        tmp_path,
        kiln_file(
            [{"t": "tensor", "k": "w", "view": [[2, 2], [3, 1], 1]}, {"t": "tensor", "k": "w"}], W
        ),
    )
    assert out[0].tolist() == [[1, 2], [4, 5]] and out[1].tolist() == list(range(6))


# ------------------------------------------------------------------- fuzzing

FUZZ = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def fuzz_base():
    import io

    buf = io.BytesIO()
    w = kiln.from_numpy(np.arange(12, dtype=np.float32))
    kiln.save(
        {
            "w": w,
            "t": w.view(3, 4).t(),
            "b": kiln.ones(2, dtype=kiln.bfloat16),
            "i": kiln.zeros(3, dtype=kiln.int64),
            "meta": [1, (2.5, None), {"s": "x"}],
            "n": np.arange(3, dtype=np.uint32),
        },
        buf,
    )
    return buf.getvalue()


BASE = fuzz_base()


def load_or_value_error(blob, verify):
    import io

    try:
        kiln.load(io.BytesIO(blob), verify_checksum=verify)
    except ValueError:  # SafetensorsError / ChecksumError
        pass


@FUZZ
@given(
    st.lists(st.tuples(st.integers(0, len(BASE) - 1), st.integers(0, 255)), min_size=1, max_size=8),
    st.booleans(),
)
def test_fuzz_byte_mutations(edits, verify):
    blob = bytearray(BASE)
    for pos, value in edits:
        blob[pos] = value
    load_or_value_error(bytes(blob), verify)


@FUZZ
@given(st.integers(0, len(BASE)), st.integers(0, 64), st.binary(max_size=64))
def test_fuzz_splices(start, delete, insert):
    blob = BASE[:start] + insert + BASE[start + delete :]
    load_or_value_error(blob, False)


def _numbers_mutated(text, data):
    """Replace some integers in the header text by hostile values (keeps JSON valid)."""
    import re

    pieces = re.split(r"(-?\d+)", text)
    for i in range(1, len(pieces), 2):
        if data.draw(st.booleans()):
            pieces[i] = str(
                data.draw(
                    st.sampled_from(
                        [0, 1, -1, 2, 3, 7, 8, 2**31, 2**62, 2**63, 2**64 + 1, -(2**63)]
                    )
                )
            )
    return "".join(pieces)


@FUZZ
@given(st.data())
def test_fuzz_header_numbers(data):
    # Headers that stay valid JSON reach the deeper checks (offsets, shapes, views);
    # the length field is kept consistent and the checksum is not verified.
    n = int.from_bytes(BASE[:8], "little")
    header = json.loads(BASE[8 : 8 + n])
    meta = header.pop("__metadata__")
    header = json.loads(_numbers_mutated(json.dumps(header), data))
    meta["kiln.structure"] = _numbers_mutated(meta["kiln.structure"], data)
    header["__metadata__"] = meta
    raw = json.dumps(header).encode()
    load_or_value_error(len(raw).to_bytes(8, "little") + raw + BASE[8 + n :], False)


def test_checksum_catches_all_single_byte_data_changes(tmp_path):
    n = int.from_bytes(BASE[:8], "little")
    for pos in range(8 + n, len(BASE)):
        blob = bytearray(BASE)
        blob[pos] ^= 0x20
        with pytest.raises(ChecksumError):
            load_bytes(tmp_path, bytes(blob))


# ------------------------------------------------------------ killed writers

KILL_SCRIPT = """
import os, sys, time
import numpy as np
import kiln

point, path = sys.argv[1], sys.argv[2]
real_fdopen, real_fsync = os.fdopen, os.fsync


def hang(why):
    print(why, flush=True)
    time.sleep(600)


class SlowFile:
    # Hangs at the third write (header and first tensor written, the rest not).
    def __init__(self, f):
        self.f, self.writes = f, 0

    def write(self, b):
        self.writes += 1
        if self.writes == 3:
            self.f.flush()
            hang("mid-write")
        return self.f.write(b)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.f.__exit__(*exc)


if point == "mid-write":
    os.fdopen = lambda fd, mode: SlowFile(real_fdopen(fd, mode))
else:
    os.fsync = lambda fd: hang("before-rename")
kiln.save({"v": 2, "a": kiln.ones(1000), "b": kiln.ones(1000), "c": kiln.ones(1000)}, path)
print("finished", flush=True)
"""


@pytest.mark.parametrize("point", ["mid-write", "before-rename"])
def test_sigkill_during_save_leaves_previous_file(tmp_path, point):
    path = tmp_path / "ckpt.safetensors"
    kiln.save({"v": 1, "a": kiln.zeros(10)}, path)
    before = path.read_bytes()
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, point, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": PYTHON_DIR},
    )
    try:
        line = proc.stdout.readline().strip()  # blocks until the child is inside save
        assert line == point
        temps = [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
        assert len(temps) == 1 and os.path.getsize(tmp_path / temps[0]) > 0
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    assert path.read_bytes() == before
    out = kiln.load(path)
    assert out["v"] == 1 and out["a"].sum().item() == 0
    orphan = tmp_path / temps[0]  # left behind by the killed writer, never at `path`
    if point == "mid-write":
        with pytest.raises(SafetensorsError):
            kiln.load(orphan)
    else:
        assert kiln.load(orphan)["v"] == 2
