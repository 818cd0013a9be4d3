"""kiln tensors <-> (safetensors dtype string, NumPy array of the bytes).

kiln has no bit-reinterpreting view and NumPy has no bfloat16, so bfloat16 goes
through float32: widening bfloat16 to float32 is exact, and the stored bits are
the float32's upper half rounded to nearest-even (exact for values that came from
bfloat16); loading shifts the bits back up and narrows to bfloat16 (again exact).
"""

import numpy as np

from kiln import _C

KILN_TO_DTYPE = {
    _C.bool: "BOOL",
    _C.uint8: "U8",
    _C.int8: "I8",
    _C.int16: "I16",
    _C.int32: "I32",
    _C.int64: "I64",
    _C.float16: "F16",
    _C.bfloat16: "BF16",
    _C.float32: "F32",
    _C.float64: "F64",
}
DTYPE_TO_KILN = {v: k for k, v in KILN_TO_DTYPE.items()}


def float32_to_bfloat16_bits(a):
    """uint16 bfloat16 bit patterns of a float32 array, rounded to nearest-even;
    NaNs stay (quiet) NaNs."""
    a = np.asarray(a, dtype=np.float32)
    bits = np.ascontiguousarray(a).reshape(a.shape).view(np.uint32)
    rounded = bits + (np.uint32(0x7FFF) + ((bits >> 16) & 1))
    out = (rounded >> 16).astype(np.uint16)
    nan = np.isnan(a)
    if nan.any():
        out[nan] = ((bits[nan] >> 16) | 0x0040).astype(np.uint16)
    return out


def bfloat16_bits_to_float32(bits):
    wide = np.asarray(bits, dtype=np.uint16).astype(np.uint32)
    wide <<= 16
    return wide.view(np.float32)


def tensor_to_numpy(t):
    """(dtype string, C-contiguous NumPy array holding `t`'s bytes); shares memory with
    a contiguous CPU tensor."""
    t = t.detach()
    if not t.is_cpu:
        t = t.cpu()
    dtype = KILN_TO_DTYPE.get(t.dtype)
    if dtype is None:
        raise TypeError(f"tensors of dtype {t.dtype} are not storable")
    if dtype == "BF16":
        return dtype, float32_to_bfloat16_bits(t.float().numpy())
    return dtype, t.contiguous().numpy()


def numpy_to_tensor(dtype, array):
    """A kiln tensor from the data of a file entry: a NumPy array of its bytes (no copy
    except for bfloat16) or the kiln tensor it was read into."""
    if isinstance(array, _C.Tensor):
        return array
    if dtype == "BF16":
        return _C.from_numpy(bfloat16_bits_to_float32(array)).to(_C.bfloat16)
    return _C.from_numpy(array)
