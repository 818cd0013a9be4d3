"""kiln.save / kiln.load: round trips, refusals, atomic writes, safetensors interop."""

import io
import json
import math
import os
from collections import OrderedDict

import kiln
import numpy as np
import pytest
from kiln.serialization import ChecksumError, SafetensorsError, load_file, save_file

DTYPES = [
    kiln.bool,
    kiln.uint8,
    kiln.int8,
    kiln.int16,
    kiln.int32,
    kiln.int64,
    kiln.float16,
    kiln.bfloat16,
    kiln.float32,
    kiln.float64,
]


def sample(dtype, shape=(3, 5)):
    """A tensor of `dtype` with varied values, incl. negatives/inf/nan for floats."""
    rng = np.random.default_rng(7)
    if dtype == kiln.bool:
        return kiln.from_numpy(np.asarray(rng.random(shape) > 0.5))
    if dtype in (kiln.float16, kiln.bfloat16, kiln.float32, kiln.float64):
        a = np.asarray(rng.standard_normal(shape) * 100)
        if a.size >= 4:
            a.flat[0], a.flat[1], a.flat[2], a.flat[3] = np.inf, -np.inf, np.nan, -0.0
        return kiln.from_numpy(a).to(dtype)
    info = np.iinfo(
        {
            kiln.uint8: np.uint8,
            kiln.int8: np.int8,
            kiln.int16: np.int16,
            kiln.int32: np.int32,
            kiln.int64: np.int64,
        }[dtype]
    )
    a = np.asarray(rng.integers(info.min, info.max, size=shape, endpoint=True))
    if a.size >= 2:
        a.flat[0], a.flat[1] = info.min, info.max
    return kiln.from_numpy(a.astype(info.dtype))


def bits(t):
    """Exact bytes of a tensor (bfloat16 via a lossless float32 widening)."""
    if t.dtype == kiln.bfloat16:
        t = t.float()
    return t.contiguous().numpy().tobytes()


def same(a, b):
    return a.dtype == b.dtype and tuple(a.shape) == tuple(b.shape) and bits(a) == bits(b)


def roundtrip(obj, tmp_path):
    path = tmp_path / "x.safetensors"
    kiln.save(obj, path)
    return kiln.load(path)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_every_dtype_round_trips_exactly(tmp_path, dtype):
    t = sample(dtype)
    out = roundtrip({"t": t, "scalar": sample(dtype, ()), "empty": sample(dtype, (0, 4))}, tmp_path)
    assert same(out["t"], t)
    assert same(out["scalar"], sample(dtype, ()))
    assert tuple(out["empty"].shape) == (0, 4) and out["empty"].dtype == dtype


def test_nesting_and_plain_values(tmp_path):
    t = sample(kiln.float32)
    obj = {
        "model": OrderedDict([("w", t), ("b", sample(kiln.int64, (2,)))]),
        "opt": {
            "state": {"0": {"step": 3, "buf": t * 2}},
            "param_groups": [
                {
                    "lr": 0.1,
                    "betas": (0.9, 0.999),
                    "nesterov": False,
                    "name": 'ünïcode "quoted" \n',
                    "wd": None,
                }
            ],
        },
        "floats": [
            0.0,
            -0.0,
            1e-310,
            1.7976931348623157e308,
            0.1,
            2.0,
            math.inf,
            -math.inf,
            math.nan,
        ],
        "ints": [0, -1, 2**63 - 1, -(2**63), 2**100],
        "bools": (True, False),
        "empty": ([], (), {}, ""),
        "nested": [[[[t]]]],
    }
    out = roundtrip(obj, tmp_path)
    assert same(out["model"]["w"], t) and same(out["opt"]["state"]["0"]["buf"], t * 2)
    assert out["opt"]["param_groups"] == obj["opt"]["param_groups"]
    assert type(out["opt"]["param_groups"][0]["betas"]) is tuple
    floats = out["floats"]
    assert [repr(f) for f in floats[:-1]] == [repr(f) for f in obj["floats"][:-1]]
    assert math.isnan(floats[-1]) and all(type(f) is float for f in floats)
    assert out["ints"] == obj["ints"] and all(type(i) is int for i in out["ints"])
    assert out["bools"] == (True, False) and type(out["bools"][0]) is bool
    assert out["empty"] == ([], (), {}, "")
    assert same(out["nested"][0][0][0][0], t)
    assert list(out["model"]) == ["w", "b"]  # order kept


def test_top_level_values(tmp_path):
    t = sample(kiln.float64)
    assert same(roundtrip(t, tmp_path), t)
    for v in (None, 3, 2.5, "s", [1, [2]], (1,), math.inf):
        assert roundtrip(v, tmp_path) == v


def test_numpy_arrays_and_scalars(tmp_path):
    arrays = {
        "u32": np.arange(5, dtype=np.uint32) * 1000003,
        "u16": np.arange(4, dtype=np.uint16),
        "u64": np.array([2**64 - 1], dtype=np.uint64),
        "f16": np.array([1.5, np.inf], dtype=np.float16),
        "big_endian": np.arange(3, dtype=">i4"),
        "strided": np.arange(20.0).reshape(4, 5)[::2, ::-1],
        "scalars": [np.float32(0.5), np.int64(7), np.bool_(True)],
    }
    out = roundtrip(arrays, tmp_path)
    for k, a in arrays.items():
        if k != "scalars":
            assert isinstance(out[k], np.ndarray) and np.array_equal(out[k], a)
    assert out["scalars"] == [0.5, 7, True] and type(out["scalars"][1]) is int


def test_non_contiguous_tensors(tmp_path):
    base = kiln.from_numpy(np.arange(60.0).reshape(3, 4, 5))
    views = {
        "transposed": base.transpose(0, 2),
        "sliced": base[:, 1:3, ::2],
        "expanded": kiln.from_numpy(np.arange(3.0)).unsqueeze(0).expand(4, 3),
        "bf16_t": base.to(kiln.bfloat16).transpose(1, 2),
    }
    for name, v in views.items():
        out = roundtrip(v, tmp_path)  # each alone: stored compactly
        assert same(out, v), name
        assert out.is_contiguous()


def test_shared_storage_is_stored_once_and_stays_shared(tmp_path):
    w = kiln.from_numpy(np.arange(1000.0, dtype=np.float32))
    state = {
        "emb": w,
        "tied": w,
        "head": w.view(10, 100).t(),
        "part": w[10:20],
        "other": kiln.ones(3),
    }
    path = tmp_path / "s.safetensors"
    kiln.save(state, path)
    # the shared span is one entry: 4000 bytes, not 4000 * 4
    assert os.path.getsize(path) < 4000 + 12 + 4096
    out = kiln.load(path)
    for k, v in state.items():
        assert same(out[k], v), k
    assert out["emb"] is out["tied"]
    with kiln.no_grad():
        out["emb"].mul_(0.0)
    assert out["part"].sum().item() == 0 and out["head"].sum().item() == 0
    assert out["other"].sum().item() == 3


def test_small_view_of_large_buffer_is_stored_compactly(tmp_path):
    big = kiln.zeros(1_000_000)
    path = tmp_path / "v.safetensors"
    kiln.save({"v": big[5:8]}, path)
    assert os.path.getsize(path) < 1000


def test_requires_grad_round_trips(tmp_path):
    w = kiln.ones(2, 2, requires_grad=True)
    out = roundtrip({"w": w, "d": w.detach()}, tmp_path)
    assert out["w"].requires_grad and out["w"].is_leaf and not out["d"].requires_grad


def test_file_objects(tmp_path):
    obj = {"a": sample(kiln.float32), "n": [1, "x"]}
    buf = io.BytesIO()
    kiln.save(obj, buf)
    buf.seek(0)
    out = kiln.load(buf)
    assert same(out["a"], obj["a"]) and out["n"] == [1, "x"]
    with open(tmp_path / "f.bin", "wb") as f:
        kiln.save(obj, f)
    with open(tmp_path / "f.bin", "rb") as f:
        assert same(kiln.load(f)["a"], obj["a"])

    class Stream:  # not seekable: checksum computed before writing
        def __init__(self):
            self.parts = []

        def write(self, b):
            self.parts.append(bytes(b))

        def read(self, n=-1):
            return self.data

    s = Stream()
    kiln.save(obj, s)
    s.data = b"".join(s.parts)
    assert s.data == buf.getvalue()
    assert same(kiln.load(s)["a"], obj["a"])
    assert same(kiln.load(str(tmp_path / "f.bin"))["a"], obj["a"])


def test_map_location(tmp_path):
    path = tmp_path / "m.safetensors"
    kiln.save({"a": kiln.ones(2)}, path)
    assert kiln.load(path, map_location="cpu")["a"].device == kiln.device("cpu")
    assert kiln.load(path, map_location=kiln.device("cpu"))["a"].is_cpu
    seen = []
    out = kiln.load(path, map_location=lambda t, loc: seen.append(loc) or t * 2)
    assert seen == ["cpu"] and out["a"].sum().item() == 4


@pytest.mark.parametrize(
    "obj, where",
    [
        ({"opt": {"lr_fn": lambda s: s}}, "obj['opt']['lr_fn']: function is not storable"),
        ({"a": [1, object()]}, "obj['a'][1]: object of type builtins.object is not storable"),
        ({(1, 2): kiln.ones(1)}, "obj: dict key (1, 2) is not storable"),
        ({"s": {1, 2}}, "obj['s']: object of type builtins.set is not storable"),
        ({"c": 1 + 2j}, "obj['c']: object of type builtins.complex"),
        ({"b": b"bytes"}, "obj['b']: object of type builtins.bytes"),
        ({"cls": int}, "obj['cls']: class int is not storable"),
        ({"o": np.array([object()])}, "obj['o']: NumPy arrays of dtype object"),
        ({"c": np.zeros(2, np.complex64)}, "obj['c']: NumPy arrays of dtype complex64"),
    ],
)
def test_unstorable_objects_are_refused_with_their_location(tmp_path, obj, where):
    path = tmp_path / "bad.safetensors"
    with pytest.raises((TypeError, ValueError)) as info:
        kiln.save(obj, path)
    assert where in str(info.value) and str(info.value).startswith("[kiln.save]")
    assert not os.listdir(tmp_path)  # nothing written, no temp file left


def test_cycles_and_named_tuples_are_refused(tmp_path):
    loop = []
    loop.append(loop)
    with pytest.raises(ValueError, match=r"obj\[0\]: the object contains itself"):
        kiln.save(loop, tmp_path / "x")
    from collections import namedtuple

    with pytest.raises(TypeError, match="named tuple"):
        kiln.save({"p": namedtuple("P", "x")(1)}, tmp_path / "x")
    shared = [1]
    assert roundtrip({"a": shared, "b": shared}, tmp_path) == {"a": [1], "b": [1]}


def test_reserved_and_colliding_names(tmp_path):
    obj = {"__metadata__": kiln.ones(1), "a.b": kiln.zeros(1), "a": {"b": kiln.full([1], 2.0)}}
    out = roundtrip(obj, tmp_path)
    for k in ("__metadata__", "a.b"):
        assert same(out[k], obj[k])
    assert same(out["a"]["b"], obj["a"]["b"])


def test_atomic_write_replaces_and_keeps_permissions(tmp_path):
    path = tmp_path / "c.safetensors"
    kiln.save({"v": 1}, path)
    kiln.save({"v": 2}, path)
    assert kiln.load(path) == {"v": 2}
    assert os.listdir(tmp_path) == ["c.safetensors"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    link = tmp_path / "link.safetensors"
    link.symlink_to(path)
    kiln.save({"v": 3}, link)
    assert link.is_symlink() and kiln.load(path) == {"v": 3}


def test_failed_save_leaves_previous_file(tmp_path):
    path = tmp_path / "c.safetensors"
    kiln.save({"v": 1}, path)

    class Boom:
        pass

    with pytest.raises(TypeError):
        kiln.save({"v": kiln.ones(3), "bad": Boom()}, path)
    assert kiln.load(path) == {"v": 1}
    assert os.listdir(tmp_path) == ["c.safetensors"]


@pytest.mark.parametrize("checksum", ["crc32", "sha256"])
def test_checksum_detects_altered_data_and_header(tmp_path, checksum):
    path = tmp_path / "c.safetensors"
    kiln.save({"w": kiln.zeros(4, 4), "meta": {"lr": 0.5}}, path, checksum=checksum)
    raw = bytearray(path.read_bytes())
    n = int.from_bytes(raw[:8], "little")
    tampered = bytearray(raw)
    tampered[-5] ^= 1  # one bit of tensor data
    path.write_bytes(tampered)
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        kiln.load(path)
    assert kiln.load(path, verify_checksum=False)["meta"] == {"lr": 0.5}
    header = raw[8 : 8 + n].replace(b"0.5", b"0.7")  # a plain value in the metadata
    path.write_bytes(raw[:8] + header + raw[8 + n :])
    with pytest.raises(ChecksumError):
        kiln.load(path)
    header = raw[8 : 8 + n].replace(b"[4,4]", b"[2,8]")  # a shape in the tensor table
    path.write_bytes(raw[:8] + header + raw[8 + n :])
    with pytest.raises(ChecksumError):
        kiln.load(path)


@pytest.mark.parametrize("checksum", ["crc32", "sha256"])
def test_large_multi_piece_tensor_with_parallel_hashing(tmp_path, checksum):
    # > 32 MiB: pieces are hashed in worker threads, on save and on load
    a = np.random.default_rng(0).integers(0, 255, size=40 << 20, dtype=np.uint8)
    t = kiln.from_numpy(a)
    path = tmp_path / "big.safetensors"
    kiln.save({"big": t, "small": kiln.ones(3)}, path, checksum=checksum)
    assert f"{checksum}-pieces-16MiB".encode() in path.read_bytes()[:1000]
    out = kiln.load(path)
    assert np.array_equal(out["big"].numpy(), a)
    with open(path, "r+b") as f:
        f.seek(-1000, os.SEEK_END)
        f.write(b"\x00\x01" * 100)
    with pytest.raises(ChecksumError):
        kiln.load(path)


def test_unknown_checksum_name_is_refused(tmp_path):
    with pytest.raises(ValueError, match="checksum must be 'crc32' or 'sha256', got 'md5'"):
        kiln.save({}, tmp_path / "x", checksum="md5")


def test_loaded_tensors_are_writable_and_independent_of_file(tmp_path):
    path = tmp_path / "w.safetensors"
    kiln.save({"a": kiln.ones(3), "b": kiln.ones(3)}, path)
    out = kiln.load(path)
    out["a"].mul_(3.0)
    path.unlink()
    assert out["a"].sum().item() == 9 and out["b"].sum().item() == 3


def test_mmap_load(tmp_path):
    path = tmp_path / "m.safetensors"
    state = {
        "a": sample(kiln.float32),
        "b": sample(kiln.bfloat16),
        "n": [1, None],
        "e": kiln.zeros(0),
    }
    kiln.save(state, path)
    before = path.read_bytes()
    for verify in (True, False):
        out = kiln.load(path, mmap=True, verify_checksum=verify)
        assert same(out["a"], state["a"]) and same(out["b"], state["b"]) and out["n"] == [1, None]
        out["a"].fill_(0.0)  # copy-on-write: the file is untouched
        assert out["a"].sum().item() == 0
    assert path.read_bytes() == before
    with open(path, "rb") as f:
        assert same(kiln.load(f, mmap=True)["a"], state["a"])
    buf = io.BytesIO(before)  # not a real file: read normally
    assert same(kiln.load(buf, mmap=True)["a"], state["a"])
    raw = bytearray(before)
    raw[-1] ^= 0xFF
    path.write_bytes(raw)
    with pytest.raises(ChecksumError):
        kiln.load(path, mmap=True)
    assert kiln.load(path, mmap=True, verify_checksum=False)["n"] == [1, None]
    path.write_bytes(before[:-1])
    with pytest.raises(SafetensorsError, match="truncated"):
        kiln.load(path, mmap=True, verify_checksum=False)


# ------------------------------------------------------------------ interop

st_numpy = pytest.importorskip("safetensors.numpy")


def test_file_is_plain_safetensors_for_state_dicts(tmp_path):
    state = {"layer.weight": sample(kiln.float32), "layer.bias": sample(kiln.int64, (5,))}
    path = tmp_path / "s.safetensors"
    kiln.save(state, path)
    got = st_numpy.load_file(str(path))
    assert set(got) == set(state)
    for k, v in state.items():
        assert got[k].tobytes() == bits(v)
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        meta = json.loads(f.read(n))["__metadata__"]
    assert meta["kiln.format"] == "1" and "kiln.structure" in meta


NP_DTYPES = [
    np.bool_,
    np.uint8,
    np.int8,
    np.int16,
    np.uint16,
    np.int32,
    np.uint32,
    np.int64,
    np.uint64,
    np.float16,
    np.float32,
    np.float64,
]


def test_safetensors_numpy_files_load(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {np.dtype(d).name: (rng.standard_normal((3, 4)) * 50).astype(d) for d in NP_DTYPES}
    arrays["empty"] = np.zeros((0, 2), np.float32)
    path = str(tmp_path / "n.safetensors")
    st_numpy.save_file(arrays, path, metadata={"note": "from numpy"})
    got = kiln.load(path)
    assert list(got) == list(load_file(path))
    for k, a in arrays.items():
        v = got[k]
        v = v if isinstance(v, np.ndarray) else v.numpy()
        assert v.dtype == a.dtype and v.shape == a.shape and v.tobytes() == a.tobytes(), k
    for k in ("uint16", "uint32", "uint64"):  # no kiln dtype: NumPy arrays
        assert isinstance(got[k], np.ndarray)


def test_save_file_loads_in_safetensors_numpy(tmp_path):
    tensors = {str(d): sample(d) for d in DTYPES if d != kiln.bfloat16}
    path = str(tmp_path / "k.safetensors")
    save_file(tensors, path, metadata={"who": "kiln"})
    got = st_numpy.load_file(path)
    for k, t in tensors.items():
        assert got[k].tobytes() == bits(t), k
    with pytest.raises(TypeError, match="metadata"):
        save_file(tensors, path, metadata={"x": 1})


torch = pytest.importorskip("torch")
st_torch = pytest.importorskip("safetensors.torch")

TORCH_OF = {
    kiln.bool: torch.bool,
    kiln.uint8: torch.uint8,
    kiln.int8: torch.int8,
    kiln.int16: torch.int16,
    kiln.int32: torch.int32,
    kiln.int64: torch.int64,
    kiln.float16: torch.float16,
    kiln.bfloat16: torch.bfloat16,
    kiln.float32: torch.float32,
    kiln.float64: torch.float64,
}


def torch_bits(t):
    return (t.float() if t.dtype == torch.bfloat16 else t).contiguous().numpy().tobytes()


def test_kiln_files_load_in_safetensors_torch(tmp_path):
    state = {str(d): sample(d) for d in DTYPES}
    path = str(tmp_path / "k.safetensors")
    kiln.save(state, path)
    got = st_torch.load_file(path)
    for d in DTYPES:
        assert got[str(d)].dtype == TORCH_OF[d] and torch_bits(got[str(d)]) == bits(state[str(d)])


def test_safetensors_torch_files_load_in_kiln(tmp_path):
    g = torch.Generator().manual_seed(0)
    state = {}
    for d, td in TORCH_OF.items():
        x = torch.randn(4, 6, generator=g) * 30
        state[str(d)] = x.to(td)
    state["transposed_source"] = torch.randn(3, 2, generator=g).t().contiguous()
    path = str(tmp_path / "t.safetensors")
    st_torch.save_file(state, path, metadata={"format": "pt"})
    got = kiln.load(path)
    for k, t in state.items():
        assert list(got[k].shape) == list(t.shape) and bits(got[k]) == torch_bits(t), k


def test_torch_model_weights_give_same_outputs_in_kiln(tmp_path):
    # PyTorch Linear weights -> safetensors -> kiln, same math with kiln ops
    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 3).double()
    path = str(tmp_path / "lin.safetensors")
    st_torch.save_file(lin.state_dict(), path)
    sd = kiln.load(path)
    x = np.random.default_rng(0).standard_normal((5, 4))
    expected = lin(torch.from_numpy(x)).detach().numpy()
    xk = kiln.from_numpy(x)
    out = (xk.unsqueeze(1) * sd["weight"].unsqueeze(0)).sum(2) + sd["bias"]
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_kiln_and_torch_bfloat16_bits_agree(tmp_path):
    x = torch.randn(1000, generator=torch.Generator().manual_seed(3)) * 1e3
    k = kiln.from_numpy(x.numpy()).to(kiln.bfloat16)
    path = str(tmp_path / "b.safetensors")
    kiln.save({"x": k}, path)
    assert torch.equal(
        st_torch.load_file(path)["x"].view(torch.int16), x.to(torch.bfloat16).view(torch.int16)
    )


def test_refuses_non_safetensors_input(tmp_path):
    path = tmp_path / "t.pt"
    torch.save({"a": torch.ones(2)}, path)
    with pytest.raises(SafetensorsError, match=r"\[kiln.load\] file '.*t.pt'"):
        kiln.load(path)
