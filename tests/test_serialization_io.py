"""kiln.load's reading machinery: the CRC-32 in C++ (zlib's), the parallel reader on
regular files, and that loaded tensors are copies a later change of the file can't reach."""

import io
import os
import signal
import subprocess
import sys
import zlib

import kiln
import numpy as np
import pytest
from kiln import _C
from kiln.serialization import ChecksumError, SafetensorsError

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(kiln.__file__)))


def test_crc32_matches_zlib_at_every_length_offset_and_start_value():
    data = np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    for n in range(0, 1100):  # table, 16-, 64- and 256-byte folding paths and their tails
        for offset in (0, 5):
            chunk = memoryview(data)[offset : offset + n]
            for start in (0, 0xDEADBEEF):
                assert _C._crc32(chunk, start) == zlib.crc32(chunk, start), (n, offset, start)
    big = np.random.default_rng(1).integers(0, 256, (1 << 20) + 77, dtype=np.uint8)
    assert _C._crc32(big) == zlib.crc32(big)
    # chaining: crc of a whole == crc of its parts fed in turn
    assert _C._crc32(big[1000:], _C._crc32(big[:1000])) == zlib.crc32(big)
    assert _C._crc32(np.arange(6, dtype=np.float32)) == zlib.crc32(np.arange(6, dtype=np.float32))


def test_crc32_refuses_non_contiguous_buffers():
    with pytest.raises(ValueError, match=r"\[crc32\] expected a contiguous buffer"):
        _C._crc32(np.arange(10, dtype=np.uint8)[::2])


def sample():
    rng = np.random.default_rng(3)
    return {
        "big": kiln.from_numpy(rng.standard_normal((3, 1 << 21)).astype(np.float32)),  # 24 MiB
        "half": kiln.from_numpy(rng.standard_normal(5).astype(np.float16)),
        "bf": kiln.from_numpy(rng.standard_normal(7).astype(np.float32)).to(kiln.bfloat16),
        "i": kiln.arange(9),
        "empty": kiln.zeros(0, 3),
        "scalar": kiln.tensor(2.5),
    }


def assert_same(got, expected):
    assert list(got) == list(expected)
    for k, v in expected.items():
        assert got[k].dtype == v.dtype and list(got[k].shape) == list(v.shape)
        assert np.array_equal(got[k].float().numpy(), v.float().numpy()), k


@pytest.mark.parametrize("checksum", ["crc32", "sha256"])
def test_file_objects_load_from_their_position_and_end_after_the_data(tmp_path, checksum):
    path = tmp_path / "p.safetensors"
    with open(path, "wb") as f:
        f.write(b"prefix")
        kiln.save(sample(), f, checksum=checksum)
    for buffering in (0, -1):  # FileIO and a BufferedReader (which reads ahead)
        with open(path, "rb", buffering=buffering) as f:
            assert f.read(6) == b"prefix"
            assert_same(kiln.load(f), sample())
            assert f.tell() == os.path.getsize(path)
    assert_same(kiln.load(io.BytesIO(path.read_bytes()[6:])), sample())


def test_saving_to_file_objects_in_place_and_appending(tmp_path):
    path = tmp_path / "w.safetensors"
    with open(path, "wb") as f:  # a BufferedWriter with bytes still in its buffer
        f.write(b"head")
        kiln.save(sample(), f)
        f.flush()
        assert f.tell() == os.path.getsize(path)
        f.write(b"tail")
    raw = path.read_bytes()
    assert raw[:4] == b"head" and raw[-4:] == b"tail"
    assert_same(kiln.load(io.BytesIO(raw[4:-4])), sample())
    with open(path, "ab") as f:  # O_APPEND: written in order, no seeking back
        kiln.save({"x": kiln.ones(3)}, f)
    with open(path, "rb") as f:
        f.seek(len(raw))
        assert kiln.load(f)["x"].tolist() == [1.0, 1.0, 1.0]


def test_loaded_tensors_own_their_memory(tmp_path):
    path = tmp_path / "o.safetensors"
    kiln.save(sample(), path)
    out = kiln.load(path)
    out["i"].add_(1)  # writable, and the file is untouched
    assert kiln.load(path)["i"].tolist() == list(range(9))
    assert out["big"].numpy().flags.writeable


def test_file_shrinking_while_loading_is_an_error_not_a_crash(tmp_path, monkeypatch):
    path = tmp_path / "s.safetensors"
    kiln.save(sample(), path)
    size = os.path.getsize(path)
    real = _C._read_pieces

    def truncate_first(fd, pieces, hash):  # the file shrinks after its header was read
        os.truncate(path, size - 1000)
        return real(fd, pieces, hash)

    monkeypatch.setattr(_C, "_read_pieces", truncate_first)
    with pytest.raises(SafetensorsError, match="truncated"):
        kiln.load(path)


AFTER_LOAD = r"""
import os, sys
import numpy as np
import kiln
path, mode = sys.argv[1], sys.argv[2]
kiln.save({"w": kiln.arange(1 << 22, dtype=kiln.float32)}, path)
out = kiln.load(path, **({"mmap": True, "verify_checksum": False} if mode == "mmap" else {}))
os.truncate(path, 0)  # another process truncates or rewrites the file in place
with open(path, "wb") as f:
    f.write(b"x" * 100)
print(float(out["w"].numpy().astype(np.float64).sum()))
"""


def test_default_load_survives_the_file_being_truncated_after_loading(tmp_path):
    script = tmp_path / "after.py"
    script.write_text(AFTER_LOAD)
    run = [sys.executable, str(script), str(tmp_path / "t.safetensors")]
    env = {**os.environ, "PYTHONPATH": PYTHON_DIR}
    done = subprocess.run(run + ["default"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    n = 1 << 22
    assert float(done.stdout) == n * (n - 1) / 2
    # the documented hazard of mmap=True, which the default avoids: the mapping faults
    done = subprocess.run(run + ["mmap"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == -signal.SIGBUS


def test_checksum_mismatch_in_a_middle_piece_is_found(tmp_path):
    path = tmp_path / "m.safetensors"
    kiln.save(sample(), path)
    with open(path, "r+b") as f:  # inside the 24 MiB tensor's second 16 MiB piece
        f.seek(os.path.getsize(path) - (6 << 20))
        f.write(b"\xff")
    with pytest.raises(ChecksumError):
        kiln.load(path)


def test_saves_written_in_pieces_with_early_writeback_round_trip(tmp_path, monkeypatch):
    # Path saves go out in pieces, each handed to the kernel's writeback as soon as it is
    # written (the fsync at the end then has little to do); shrink the piece so a small
    # state dict spans many pieces and tensors straddle piece boundaries.
    from kiln.serialization import _safetensors

    monkeypatch.setattr(_safetensors, "_WRITE_PIECE", 4096)
    started = []
    real = _C._start_writeback
    monkeypatch.setattr(
        _safetensors._C, "_start_writeback", lambda fd, off, n: (started.append(off), real(fd, off, n))
    )
    rng = np.random.default_rng(0)
    state = {f"w{i}": kiln.tensor(rng.standard_normal(1000 + 7 * i).astype(np.float32))
             for i in range(5)}
    path = tmp_path / "pieces.safetensors"
    kiln.save(state, path)
    loaded = kiln.load(path)
    for name, t in state.items():
        assert np.array_equal(loaded[name].numpy(), t.numpy())
    assert len(started) > 5 and started == sorted(started)
    # A file object gets no writeback hints: its owner decides about durability.
    started.clear()
    with open(tmp_path / "plain.safetensors", "wb") as f:
        kiln.save(state, f)
    assert started == []
