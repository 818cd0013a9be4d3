"""Zero-copy interchange: DLPack (both ways, NumPy and PyTorch), from_numpy/.numpy(), __array__."""

import gc
import weakref

import kiln
import numpy as np
import pytest
from compare import require_torch

DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32",
          "float64"]
NUMPY_DTYPES = [d for d in DTYPES if d != "bfloat16"]


def _sample(dtype, shape=(2, 3)):
    return kiln.tensor(np.arange(np.prod(shape)).reshape(shape) % 2 == 1
                       if dtype == "bool" else np.arange(np.prod(shape)).reshape(shape),
                       dtype=getattr(kiln, dtype))


# ---- DLPack: protocol details -------------------------------------------------------


def test_dlpack_device_and_capsule_names():
    t = kiln.ones(2, 3)
    assert t.__dlpack_device__() == (1, 0)
    legacy = t.__dlpack__()
    assert 'capsule object "dltensor"' in repr(legacy)
    versioned = t.__dlpack__(max_version=(1, 0))
    assert '"dltensor_versioned"' in repr(versioned)
    assert '"dltensor"' in repr(t.__dlpack__(max_version=(0, 8)))
    k = kiln.from_dlpack(versioned)
    assert '"used_dltensor_versioned"' in repr(versioned)
    assert k.data_ptr() == t.data_ptr()
    kiln.from_dlpack(legacy)
    assert '"used_dltensor"' in repr(legacy)
    with pytest.raises(ValueError, match=r"\[from_dlpack\].*consumed only once"):
        kiln.from_dlpack(legacy)


def test_dlpack_keyword_arguments():
    t = kiln.arange(6.0).reshape(2, 3) if hasattr(kiln, "arange") else kiln.ones(2, 3)
    with pytest.raises(TypeError):
        t.__dlpack__(None)  # keyword-only, as in the array API
    with pytest.raises(ValueError, match="stream"):
        t.__dlpack__(stream=1)
    with pytest.raises(BufferError):
        t.__dlpack__(dl_device=(2, 0))
    with pytest.raises(TypeError, match="max_version"):
        t.__dlpack__(max_version="1.0")
    with pytest.raises(TypeError, match="dl_device"):
        t.__dlpack__(dl_device=5)
    assert kiln.from_dlpack(t.__dlpack__(dl_device=(1, 0))).data_ptr() == t.data_ptr()
    copied = kiln.from_dlpack(t.__dlpack__(copy=True, max_version=(1, 0)))
    assert copied.data_ptr() != t.data_ptr()
    assert copied.tolist() == t.tolist()
    assert kiln.from_dlpack(t.__dlpack__(copy=False)).data_ptr() == t.data_ptr()


def test_dlpack_refuses_tensors_requiring_grad():
    t = kiln.ones(3, requires_grad=True)
    with pytest.raises(BufferError, match="requires grad"):
        t.__dlpack__()
    assert kiln.from_dlpack(t.detach()).data_ptr() == t.data_ptr()


def test_from_dlpack_bad_inputs():
    with pytest.raises(TypeError, match=r"\[from_dlpack\]"):
        kiln.from_dlpack([1, 2, 3])
    with pytest.raises(TypeError, match=r"\[from_dlpack\]"):
        kiln.from_dlpack(None)
    with pytest.raises(TypeError, match=r"\[from_dlpack\].*dtype"):
        kiln.from_dlpack(np.zeros(3, dtype=np.complex64))
    with pytest.raises(TypeError, match=r"\[from_dlpack\].*dtype"):
        kiln.from_dlpack(np.zeros(3, dtype=np.uint32))


def test_exported_capsule_keeps_storage_alive():
    t = kiln.tensor([1.0, 2.0, 3.0])
    a = np.from_dlpack(t)
    del t
    gc.collect()
    filler = [kiln.full((3,), 7.0) for _ in range(10)]  # reuse freed memory if it was freed
    assert a.tolist() == [1.0, 2.0, 3.0]
    del filler


def test_unconsumed_capsule_releases_its_tensor():
    # A kiln tensor borrowing a NumPy array keeps it alive; so does a capsule of that tensor.
    arr = np.arange(4.0)
    ref = weakref.ref(arr)
    k = kiln.from_numpy(arr)
    del arr
    caps = k.__dlpack__(max_version=(1, 0))
    del k
    gc.collect()
    assert ref() is not None
    del caps  # never consumed: its destructor must call the deleter
    gc.collect()
    assert ref() is None


def test_imported_storage_calls_producer_deleter():
    arr = np.arange(4.0)
    ref = weakref.ref(arr)
    k = kiln.from_dlpack(arr)
    view = k[1:] if hasattr(kiln.Tensor, "__getitem__") else k.transpose(0, 0)
    del arr, k
    gc.collect()
    assert ref() is not None  # a view still uses the memory
    assert view.numel() >= 3
    del view
    gc.collect()
    assert ref() is None


# ---- DLPack: NumPy -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
def test_numpy_round_trip_all_dtypes(dtype):
    t = _sample(dtype)
    a = np.from_dlpack(t)
    assert a.dtype == np.dtype(dtype)
    assert a.shape == (2, 3)
    np.testing.assert_array_equal(a, t.numpy())
    back = kiln.from_dlpack(a)
    assert back.dtype == t.dtype and back.data_ptr() == t.data_ptr()


def test_numpy_shares_memory_both_ways():
    t = kiln.zeros(2, 3)
    a = np.from_dlpack(t)
    a[1, 2] = 5.0
    assert t.tolist()[1][2] == 5.0
    t.fill_(2.0)
    assert (a == 2.0).all()

    arr = np.zeros((3, 2), dtype=np.float64)
    k = kiln.from_dlpack(arr)
    assert k.dtype == kiln.float64 and k.shape == (3, 2)
    k.add_(1.5)
    assert (arr == 1.5).all()
    arr[0, 0] = -1
    assert k.tolist()[0][0] == -1


def test_numpy_noncontiguous_strides():
    base = np.arange(24.0).reshape(4, 6)
    view = base[::2, 1::3]
    k = kiln.from_dlpack(view)
    assert k.shape == (2, 2) and k.stride() == (12, 3)
    assert k.tolist() == view.tolist()
    t = kiln.from_numpy(np.arange(12.0).reshape(3, 4)).transpose(0, 1)
    a = np.from_dlpack(t)
    assert a.strides == (8, 32)
    np.testing.assert_array_equal(a, np.arange(12.0).reshape(3, 4).T)
    a[0, 1] = 100
    assert t.tolist()[0][1] == 100


def test_numpy_empty_zero_dim_and_expanded():
    e = kiln.from_dlpack(np.zeros((0, 3), dtype=np.float32))
    assert e.shape == (0, 3) and e.numel() == 0
    assert np.from_dlpack(kiln.zeros(0, 4)).shape == (0, 4)
    s = kiln.from_dlpack(np.array(3.5))
    assert s.ndim == 0 and s.item() == 3.5
    assert np.from_dlpack(kiln.tensor(2.0)).shape == ()
    x = kiln.tensor([1.0, 2.0]).expand(3, 2)
    a = np.from_dlpack(x)
    assert a.strides == (0, 4) and a.tolist() == [[1.0, 2.0]] * 3


def test_numpy_negative_strides_rejected():
    with pytest.raises(ValueError, match="negative"):
        kiln.from_dlpack(np.arange(5.0)[::-1])


def test_read_only_numpy_array_is_copied():
    arr = np.arange(3.0)
    arr.flags.writeable = False
    k = kiln.from_dlpack(arr)
    assert k.tolist() == [0.0, 1.0, 2.0]
    k.add_(1)
    assert arr.tolist() == [0.0, 1.0, 2.0]


# ---- DLPack: PyTorch -----------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_round_trip_all_dtypes(dtype):
    torch = require_torch()
    t = _sample(dtype)
    tt = torch.from_dlpack(t)
    assert str(tt.dtype) == "torch." + dtype
    assert tt.shape == (2, 3) and tt.data_ptr() == t.data_ptr()
    assert tt.tolist() == t.tolist()
    src = torch.arange(6).reshape(2, 3).to(getattr(torch, dtype))
    k = kiln.from_dlpack(src)
    assert k.dtype == getattr(kiln, dtype) and k.data_ptr() == src.data_ptr()
    assert k.tolist() == src.tolist()


def test_torch_shares_memory_both_ways():
    torch = require_torch()
    t = kiln.zeros(2, 3)
    tt = torch.from_dlpack(t)
    tt[0, 1] = 4.0
    assert t.tolist()[0][1] == 4.0
    t.add_(1.0)
    assert tt.tolist() == [[1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]

    src = torch.zeros(4, dtype=torch.float64)
    k = kiln.from_dlpack(src)
    k.fill_(3.0)
    assert src.tolist() == [3.0] * 4
    src[2] = -2
    assert k.tolist()[2] == -2


def test_torch_noncontiguous_and_offsets():
    torch = require_torch()
    src = torch.arange(20.0).reshape(4, 5)
    view = src[1:, ::2].t()
    k = kiln.from_dlpack(view)
    assert k.shape == tuple(view.shape) and k.stride() == view.stride()
    assert k.tolist() == view.tolist()
    kt = kiln.from_numpy(np.arange(20.0).reshape(4, 5)).transpose(0, 1)
    back = torch.from_dlpack(kt)
    assert back.stride() == (1, 5) and back.tolist() == kt.tolist()


def test_torch_tensor_requiring_grad_is_refused_by_torch():
    torch = require_torch()
    with pytest.raises(BufferError):
        kiln.from_dlpack(torch.ones(2, requires_grad=True))
    k = kiln.from_dlpack(torch.ones(2, requires_grad=True).detach())
    assert k.tolist() == [1.0, 1.0]


# ---- from_numpy / .numpy() / __array__ ------------------------------------------------


@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
def test_from_numpy_and_numpy_share_memory(dtype):
    arr = (np.arange(6) % 2).astype(dtype).reshape(2, 3)
    k = kiln.from_numpy(arr)
    assert k.dtype == getattr(kiln, dtype) and k.data_ptr() == arr.ctypes.data
    back = k.numpy()
    assert back.dtype == arr.dtype and back.ctypes.data == arr.ctypes.data
    arr[0, 0] = 1
    assert k.tolist()[0][0] == 1


def test_from_numpy_noncontiguous():
    base = np.arange(30.0).reshape(5, 6)
    view = base[1::2, ::3]
    k = kiln.from_numpy(view)
    assert k.stride() == (12, 3) and k.tolist() == view.tolist()
    assert not k.is_contiguous()
    t = kiln.from_numpy(base).transpose(0, 1)
    a = t.numpy()
    assert a.strides == (8, 48)
    np.testing.assert_array_equal(a, base.T)


def test_from_numpy_errors():
    with pytest.raises(ValueError, match=r"\[from_numpy\].*negative"):
        kiln.from_numpy(np.arange(4.0)[::-1])
    with pytest.raises(TypeError, match=r"\[from_numpy\]"):
        kiln.from_numpy(np.zeros(2, dtype=np.complex128))
    with pytest.raises(TypeError, match=r"\[from_numpy\]"):
        kiln.from_numpy(np.zeros(2, dtype=">f4"))


def test_numpy_errors():
    with pytest.raises(TypeError, match="bfloat16"):
        kiln.ones(2, dtype=kiln.bfloat16).numpy()
    with pytest.raises(RuntimeError, match="requires grad"):
        kiln.ones(2, requires_grad=True).numpy()
    assert kiln.ones(2, requires_grad=True).detach().numpy().tolist() == [1.0, 1.0]


def test_array_protocol():
    t = kiln.tensor([[1.0, 2.0], [3.0, 4.0]])
    a = np.asarray(t)
    assert a.dtype == np.float32 and a.ctypes.data == t.data_ptr()
    assert np.array(t).ctypes.data != t.data_ptr()  # np.array copies by default
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    assert np.array(t, copy=True).ctypes.data != t.data_ptr()
    with pytest.raises(ValueError):
        np.array(t, dtype=np.float64, copy=False)
    assert np.add(t, 1).tolist() == [[2.0, 3.0], [4.0, 5.0]]
    assert t.__array_priority__ > 0
    assert np.asarray(kiln.tensor(3)).shape == ()
    with pytest.raises(TypeError, match="bfloat16"):
        np.asarray(kiln.ones(2, dtype=kiln.bfloat16))


def test_numpy_operand_on_the_left_defers_to_kiln():
    t = kiln.tensor([1.0, 2.0])
    r = np.float64(2.0) * t
    assert isinstance(r, kiln.Tensor) and r.tolist() == [2.0, 4.0]
