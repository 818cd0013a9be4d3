"""CUDA reductions and scans: each result (and gradient) on the GPU
against kiln's CPU result and PyTorch's (CPU).

Every test is marked `cuda` and skips without a GPU. Run on a GPU machine with:
    cd tests && python -m pytest -q test_cuda_reduce.py test_cuda_softmax_loss_norm.py
KILN_TEST_CUDA_REDUCE_DEVICE=cpu runs the same comparisons with the "device" side on the CPU,
which checks the tests themselves on a machine without a GPU.
"""

import os

import kiln
import numpy as np
import pytest
from compare import assert_close, require_torch, torch_dtype
from test_reduce import reduce_ref, tdims

torch = require_torch()
F = torch.nn.functional
KF = kiln.nn.functional

DEVICE = os.environ.get("KILN_TEST_CUDA_REDUCE_DEVICE", "cuda")
if DEVICE == "cuda":
    pytestmark = pytest.mark.cuda

FLOATS = [kiln.float32, kiln.float64, kiln.float16, kiln.bfloat16]
INTS = [kiln.int64, kiln.int32, kiln.int8, kiln.uint8]
LAYOUTS = ["contiguous", "transposed", "sliced", "expanded"]


def tol(dtype):
    """(rtol, atol) for comparing two implementations' results in `dtype`."""
    if dtype in (kiln.float16, kiln.bfloat16):
        return (2e-2, 2e-2) if dtype == kiln.bfloat16 else (5e-3, 5e-3)
    return (1e-4, 1e-5) if dtype == kiln.float32 else (1e-10, 1e-12)


def sample(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == kiln.bool:
        return rng.random(shape) > 0.5
    if dtype == kiln.uint8:
        return rng.integers(0, 4, shape)
    if not dtype.is_floating_point:
        return rng.integers(-3, 4, shape)
    return rng.standard_normal(shape)


def views(arr, kind, dtype):
    """The same values, in the same memory layout, as kiln CPU, kiln device and torch tensors.
    The view is taken after the move, so the device kernel sees the layout too."""
    if kind == "contiguous":
        base = arr
    elif kind == "transposed":
        base = np.ascontiguousarray(np.swapaxes(arr, 0, -1))
    elif kind == "sliced":
        base = np.zeros(arr.shape[:-1] + (arr.shape[-1] * 2,), dtype=arr.dtype)
        base[..., ::2] = arr
    else:
        base = np.ascontiguousarray(arr[:1])

    def make(t):
        if kind == "transposed":
            return t.transpose(0, -1)
        if kind == "sliced":
            return t[..., ::2]
        if kind == "expanded":
            return t.expand(*arr.shape)
        return t

    k = kiln.tensor(base).to(dtype)
    t = torch.tensor(base).to(torch_dtype(dtype))
    return make(k), make(k.to(DEVICE)), make(t)


def on_device(t):
    assert t.device.type == DEVICE
    return t.cpu()


def same(dev, cpu, dtype=None, rtol=None, atol=None):
    """A device result equals kiln's CPU result (tuples elementwise)."""
    if isinstance(cpu, (tuple, list)):
        for d, c in zip(dev, cpu):
            same(d, c, dtype, rtol, atol)
        return
    r, a = tol(dtype or cpu.dtype) if cpu.dtype.is_floating_point else (None, None)
    assert_close(
        on_device(dev), cpu, rtol if rtol is not None else r, atol if atol is not None else a
    )


def exact_torch(dtype):
    return dtype in (kiln.float32, kiln.float64) or not dtype.is_floating_point


def prod_ref(t, dim, keepdim):
    """torch's product over one dim, several, or all (dim None)."""
    if t.ndim == 0 or (dim is None and not keepdim):
        return t.prod()
    dims = tdims(dim, t.ndim)
    for d in sorted(
        {d % t.ndim for d in ([dims] if isinstance(dims, int) else dims)}, reverse=True
    ):
        t = t.prod(d, keepdim=keepdim)
    return t


def ref(name, t, dim, keepdim):
    return prod_ref(t, dim, keepdim) if name == "prod" else reduce_ref(name, t, dim, keepdim)


def call(x, name, dim, keepdim):
    if dim is None:
        return getattr(x, name)(keepdim=keepdim) if keepdim else getattr(x, name)()
    return getattr(x, name)(dim=dim, keepdim=keepdim)


# ---- full and multi-dim reductions ------------------------------------------------------

MULTI = ["sum", "mean", "nansum", "var", "std", "amax", "amin", "logsumexp", "norm", "prod"]
DIMS = [None, 0, -1, (0, 2), [1], (-1, 0)]


@pytest.mark.parametrize("name", MULTI)
@pytest.mark.parametrize("dim", DIMS, ids=str)
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_float_reductions(name, dim, keepdim, dtype):
    arr = sample((3, 4, 5), kiln.float64, seed=1)
    if name == "prod":
        arr = arr * 0.5 + 1
    for kind in LAYOUTS:
        c, d, t = views(arr, kind, dtype)
        got = call(d, name, dim, keepdim)
        same(got, call(c, name, dim, keepdim), dtype)
        if exact_torch(dtype):
            assert_close(on_device(got), ref(name, t, dim, keepdim), *tol(dtype))


@pytest.mark.parametrize("name", ["sum", "prod", "amax", "amin"])
@pytest.mark.parametrize("dtype", INTS + [kiln.bool], ids=str)
@pytest.mark.parametrize("dim", [None, 0, -1, (0, 1)], ids=str)
def test_integer_reductions_accumulate_in_int64(name, dtype, dim):
    if dtype == kiln.bool and name in ("amax", "amin"):
        pytest.skip("torch has no bool amax")
    arr = sample((6, 5, 4), dtype, seed=2)
    c, d, t = views(arr, "transposed", dtype)
    got = call(d, name, dim, False)
    same(got, call(c, name, dim, False))
    assert_close(on_device(got), ref(name, t, dim, False))


@pytest.mark.parametrize("name", ["all", "any"])
@pytest.mark.parametrize("dtype", [kiln.bool, kiln.float32, kiln.uint8, kiln.int64], ids=str)
@pytest.mark.parametrize("dim", [None, 0, 1, -1])
def test_all_any(name, dtype, dim):
    arr = sample((7, 9, 3), kiln.bool, seed=3).astype(np.float64)
    arr[2] = 1  # a row of all-true
    for kind in LAYOUTS:
        c, d, t = views(arr, kind, dtype)
        got = getattr(d, name)() if dim is None else getattr(d, name)(dim)
        same(got, getattr(c, name)() if dim is None else getattr(c, name)(dim))
        assert_close(on_device(got), getattr(t, name)() if dim is None else getattr(t, name)(dim))


@pytest.mark.parametrize("name", ["sum", "mean", "var", "logsumexp", "amax", "norm", "nansum"])
@pytest.mark.parametrize(
    "shape,dim",
    [
        ((3, 100_000), -1),
        ((100_000, 3), 0),
        ((1 << 21,), 0),
        ((100_000, 7), 1),
        ((7, 3, 50_000), 1),
        ((2, 40_000, 2), 1),
    ],
    ids=str,
)
def test_large_and_many_small_rows(name, shape, dim):
    arr = sample(shape, kiln.float32, seed=4)
    c, d, t = views(arr, "contiguous", kiln.float32)
    got = call(d, name, dim, False)
    same(got, call(c, name, dim, False), rtol=1e-4, atol=1e-4)
    assert_close(on_device(got), reduce_ref(name, t, dim, False), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["sum", "mean", "amax", "nansum", "norm", "logsumexp"])
@pytest.mark.parametrize(
    "shape,dim",
    [
        ((64, 32, 16, 16), (0, 2, 3)),  # a bias gradient: 16-byte loads, a second pass
        ((2048, 3, 1024), (0, 2)),  # long rows around few kept ones: many chunks
        ((6, 5, 7, 3), (0, 3)),  # rows of 3: one element per load
        ((9, 2, 4, 8), (0, 1, 3)),  # kept dim between reduced runs of several dims
        ((1, 4, 1, 3, 5), (0, 4)),  # size-1 dims belong to no run
    ],
    ids=str,
)
@pytest.mark.parametrize("dtype", [kiln.float32, kiln.bfloat16], ids=str)
def test_reductions_around_kept_dims(name, shape, dim, dtype):
    # Reduced dims before and after the kept ones are read in place (the split form).
    arr = sample(shape, kiln.float32, seed=5)
    c, d, t = views(arr, "contiguous", dtype)
    got = call(d, name, dim, False)
    # Sums of up to 2^21 bf16 values: kiln accumulates in float on both devices, in
    # different orders.
    rtol, atol = (1e-4, 1e-4) if dtype == kiln.float32 else (2e-2, 2e-2)
    same(got, call(c, name, dim, False), rtol=rtol, atol=atol * 10)
    if dtype == kiln.float32:  # torch's float32 norm of 2M elements is off by 7e-4
        ref = reduce_ref(name, t.double(), dim, False).float()
        assert_close(on_device(got), ref, rtol=1e-4, atol=1e-3)
    keep = call(d, name, dim, True)
    assert keep.shape == tuple(1 if i in {x % len(shape) for x in dim} else s
                               for i, s in enumerate(shape))


def test_empty_size_one_and_scalar_inputs():
    for shape, dim in [
        ((0, 4), 0),
        ((0, 4), 1),
        ((4, 0), 1),
        ((1, 5), 0),
        ((5, 1), 1),
        ((), None),
        ((1,), 0),
        ((2, 0, 3), (0, 2)),
    ]:
        arr = sample(shape, kiln.float32, seed=5)
        c, d, t = views(arr, "contiguous", kiln.float32)
        for name in ["sum", "mean", "prod", "nansum", "var", "logsumexp", "norm"]:
            got = call(d, name, dim, False)
            same(got, call(c, name, dim, False))
            assert_close(on_device(got), ref(name, t, dim, False))
        assert_close(on_device(d.any()), t.any())
        assert_close(on_device(d.all()), t.all())
    with pytest.raises(IndexError, match="amax"):
        kiln.zeros(0, 3, device=DEVICE).amax(0)


def test_nan_and_inf_propagate():
    arr = sample((4, 6), kiln.float64, seed=6)
    arr[0, 2] = np.nan
    arr[1, :] = -np.inf
    arr[2, 3] = np.inf
    c, d, t = views(arr, "contiguous", kiln.float32)
    for name in ["sum", "nansum", "amax", "amin", "logsumexp", "var", "norm"]:
        got = call(d, name, -1, False)
        same(got, call(c, name, -1, False))
        assert_close(on_device(got), reduce_ref(name, t, -1, False))


# ---- max/min with indices -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["max", "min"])
@pytest.mark.parametrize("dtype", FLOATS + INTS, ids=str)
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_with_indices(name, dtype, dim, keepdim):
    arr = np.round(sample((5, 37, 4), kiln.float64, seed=7) * 2)  # many ties
    for kind in LAYOUTS:
        c, d, t = views(arr, kind, dtype)
        v, i = getattr(d, name)(dim, keepdim)
        cv, ci = getattr(c, name)(dim, keepdim)
        same(v, cv)
        same(i, ci)
        tv, ti = getattr(t, name)(dim, keepdim)
        assert_close(on_device(v), tv)
        assert_close(on_device(i), ti)  # the first of tied extremes, as in PyTorch


def test_argmax_argmin_full_long_rows_nan_and_ties():
    arr = np.zeros(300_000)
    arr[123_456] = 5
    arr[200_000] = 5
    c, d, t = views(arr, "contiguous", kiln.float32)
    assert on_device(d.argmax()).item() == 123_456
    arr = sample((8, 70_000), kiln.float64, seed=8)
    arr[3, 50_000] = np.nan
    arr[5, :] = -np.inf
    c, d, t = views(arr, "contiguous", kiln.float32)
    for name in ["argmax", "argmin"]:
        for dim in [None, 0, 1]:
            got = getattr(d, name)(dim)
            same(got, getattr(c, name)(dim))
            assert_close(on_device(got), getattr(t, name)(dim))
    v, i = d.max(1)
    tv, ti = t.max(1)
    assert_close(on_device(v), tv)
    assert_close(on_device(i), ti)


# ---- gradients ------------------------------------------------------------------------------


def grads(fn, arrays, dtype, device, seed=9):
    """Output and input gradients of fn(*leaves) on `device` (kiln), with a fixed cotangent."""
    leaves = [kiln.tensor(a).to(dtype).to(device).requires_grad_() for a in arrays]
    out = fn(*leaves)
    cot = kiln.tensor(np.random.default_rng(seed).standard_normal(tuple(out.shape))).to(out.dtype)
    out.backward(cot.to(device))
    return [out] + [leaf.grad for leaf in leaves]


def torch_grads(fn, arrays, dtype, seed=9):
    leaves = [torch.tensor(a).to(torch_dtype(dtype)).requires_grad_() for a in arrays]
    out = fn(*leaves)
    cot = torch.tensor(np.random.default_rng(seed).standard_normal(tuple(out.shape))).to(out.dtype)
    out.backward(cot)
    return [out] + [leaf.grad for leaf in leaves]


def check_grads(kfn, tfn, arrays, dtype, rtol=None, atol=None):
    dev = grads(kfn, arrays, dtype, DEVICE)
    cpu = grads(kfn, arrays, dtype, "cpu")
    r, a = tol(dtype)
    r, a = rtol or r, atol or a
    for g_dev, g_cpu in zip(dev, cpu):
        assert (g_dev is None) == (g_cpu is None)
        if g_dev is not None:
            assert_close(on_device(g_dev), g_cpu, r, a)
    if tfn is not None and exact_torch(dtype):
        if dtype == kiln.float32:  # torch rounds differently in degenerate cases (e.g. 1 element)
            a = max(a, 1e-4)
        for g_dev, g_ref in zip(dev, torch_grads(tfn, arrays, dtype)):
            if g_ref is not None:
                assert_close(on_device(g_dev), g_ref, r, a)


@pytest.mark.parametrize("name", ["sum", "mean", "var", "std", "logsumexp", "amax", "norm", "prod"])
@pytest.mark.parametrize("dim", [None, 1, (0, 2)], ids=str)
@pytest.mark.parametrize("dtype", [kiln.float32, kiln.float64], ids=str)
def test_reduction_gradients(name, dim, dtype):
    arr = sample((3, 6, 4), kiln.float64, seed=10)
    check_grads(
        lambda x: call(x, name, dim, False), lambda x: ref(name, x, dim, False), [arr], dtype
    )


@pytest.mark.parametrize("name", ["max", "min"])
def test_max_dim_gradient_through_index_mask(name):
    arr = sample((6, 9, 5), kiln.float64, seed=11)
    check_grads(
        lambda x: getattr(x, name)(1)[0], lambda x: getattr(x, name)(1)[0], [arr], kiln.float64
    )


@pytest.mark.parametrize("p", [2, 1, 3, 0.5, float("inf"), float("-inf"), 0])
def test_vector_norm_orders_and_gradients(p):
    arr = sample((5, 8), kiln.float64, seed=12)
    for dim in [None, 0, 1]:
        check_grads(
            lambda x, dim=dim: kiln.norm(x, p, dim),
            lambda x, dim=dim: torch.linalg.vector_norm(x, p, dim),
            [arr],
            kiln.float64,
        )
    for dtype in [kiln.float16, kiln.bfloat16]:
        c, d, _ = views(arr, "transposed", dtype)
        same(kiln.norm(d, p, 1), kiln.norm(c, p, 1), dtype)


# ---- scans ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
@pytest.mark.parametrize("dtype", FLOATS + INTS + [kiln.bool], ids=str)
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_scans(name, dtype, dim):
    arr = sample((6, 45, 3), dtype, seed=13)
    if dtype.is_floating_point and name == "cumprod":
        arr = arr * 0.2 + 1
    for kind in ["contiguous", "transposed"]:
        c, d, t = views(arr, kind, dtype)
        got = getattr(d, name)(dim)
        same(got, getattr(c, name)(dim), dtype)
        if exact_torch(dtype):
            assert_close(on_device(got), getattr(t, name)(dim), *tol(dtype))


@pytest.mark.parametrize(
    "shape,dim",
    [((3, 100_000), 1), ((100_000, 3), 0), ((50_000, 5), 1), ((0, 4), 1), ((1,), 0), ((), 0)],
    ids=str,
)
def test_scan_sizes(shape, dim):
    arr = sample(shape, kiln.float64, seed=14)
    c, d, t = views(arr, "contiguous", kiln.float64)
    for name in ["cumsum", "cumprod"]:
        x = arr * 1e-3 + 1 if name == "cumprod" else arr
        c, d, t = views(x, "contiguous", kiln.float64)
        got = getattr(d, name)(dim)
        same(got, getattr(c, name)(dim))
        assert_close(on_device(got), getattr(t, name)(dim), 1e-9, 1e-9)


def test_scan_gradients_with_zeros():
    arr = sample((4, 7), kiln.float64, seed=15)
    arr[1, 3] = 0
    arr[2, 1] = arr[2, 5] = 0
    for dim in [0, 1]:
        for name in ["cumsum", "cumprod"]:
            fn = lambda x, name=name, dim=dim: getattr(x, name)(dim)
            check_grads(fn, fn, [arr], kiln.float64)
    check_grads(lambda x: x.cumprod(1), lambda x: x.cumprod(1), [arr + 3], kiln.float64)
