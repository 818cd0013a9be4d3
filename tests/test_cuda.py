"""CUDA backend: differential tests against kiln's CPU results and PyTorch (CPU).

Every test is marked `cuda` and skips without a GPU (see conftest.py). Run on a
GPU machine with:  cd tests && python -m pytest -q test_cuda.py
"""

import numpy as np
import pytest

import kiln
from compare import assert_close, randn, require_torch, torch_dtype

pytestmark = pytest.mark.cuda

FLOATS = [kiln.float32, kiln.float64, kiln.float16, kiln.bfloat16]
ALL = FLOATS + [kiln.int64, kiln.int32, kiln.int16, kiln.int8, kiln.uint8, kiln.bool]


def sample(shape, dtype, seed=0):
    """NumPy data representable in `dtype` (small integers for integer dtypes, nonzero)."""
    rng = np.random.default_rng(seed)
    if dtype == kiln.bool:
        return rng.random(shape) > 0.5
    if dtype in (kiln.uint8,):
        return rng.integers(1, 10, shape)
    if not dtype.is_floating_point:
        v = rng.integers(-9, 10, shape)
        return np.where(v == 0, 1, v)
    return rng.standard_normal(shape)


def on_cuda(arr, dtype):
    k = kiln.tensor(np.asarray(arr)).to(dtype)
    return k, k.cuda()


def back(t):
    assert t.device.type == "cuda"
    return t.cpu()


# ---- device basics ---------------------------------------------------------------------


def test_available_and_explained():
    assert kiln.cuda.is_available() and kiln.cuda.is_available(explain=True)
    assert kiln.cuda.device_count() >= 1
    assert kiln.cuda.current_device() == 0
    assert isinstance(kiln.cuda.get_device_name(), str)


@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_factories_and_round_trip(dtype):
    assert kiln.zeros(2, 3, dtype=dtype, device="cuda").device == kiln.device("cuda:0")
    assert_close(back(kiln.zeros(2, 3, dtype=dtype, device="cuda")), kiln.zeros(2, 3, dtype=dtype))
    assert_close(back(kiln.ones(4, dtype=dtype, device="cuda:0")), kiln.ones(4, dtype=dtype))
    assert_close(back(kiln.full((5,), 1, dtype=dtype, device="cuda")), kiln.full((5,), 1, dtype=dtype))
    host, dev = on_cuda(sample((3, 5), dtype), dtype)
    assert_close(back(dev), host)
    assert_close(back(host.t().cuda()), host.t())  # non-contiguous source
    assert_close(dev.t().cpu(), host.t())  # non-contiguous device source


@pytest.mark.parametrize("src", FLOATS + [kiln.int32, kiln.bool], ids=str)
@pytest.mark.parametrize("dst", FLOATS + [kiln.int64, kiln.bool], ids=str)
def test_dtype_conversion_on_device(src, dst):
    host, dev = on_cuda(sample((7, 3), src), src)
    assert_close(back(dev.to(dst)), host.to(dst))


def test_copy_broadcasts_across_devices():
    dst = kiln.zeros(4, 3, device="cuda")
    dst.copy_(kiln.arange(3.0))
    assert_close(back(dst), kiln.arange(3.0).expand(4, 3))
    host = kiln.zeros(3, 4).t()  # non-contiguous host destination
    host.copy_(kiln.ones(4, 3, device="cuda") * 2)
    assert_close(host, kiln.full((4, 3), 2.0))


@pytest.mark.parametrize("dtype", ALL, ids=str)
@pytest.mark.parametrize(
    "view",
    [
        lambda t: t.permute(0, 2, 1, 3),  # attention's head transpose
        lambda t: t.permute(2, 0, 1, 3)[1:],  # an offset start
        lambda t: t[..., 1:],  # rows that start off a word boundary
        lambda t: t[:, :, :1].expand(-1, -1, 5, -1),  # a broadcast (stride 0) dim
        lambda t: t.transpose(-1, -2),  # innermost dim not dense: one element per thread
    ],
    ids=["heads", "offset", "misaligned", "broadcast", "transposed"],
)
@pytest.mark.parametrize("width", [8, 6, 3])
def test_strided_copy_in_words(dtype, view, width):
    """Same-dtype copies with a dense innermost dim move 16/8/4-byte words where rows,
    strides and pointers allow, else elements."""
    host, dev = on_cuda(sample((2, 5, 3, width), dtype), dtype)
    assert_close(back(view(dev).contiguous()), view(host).contiguous())
    out = kiln.zeros(view(host).shape, dtype=dtype, device="cuda").transpose(0, 1)
    out.copy_(view(dev).transpose(0, 1))  # into a strided destination
    assert_close(back(out.transpose(0, 1).contiguous()), view(host).contiguous())


def test_mixed_devices_name_both():
    with pytest.raises(RuntimeError, match=r"cpu.*cuda:0|cuda:0.*cpu"):
        kiln.ones(3) + kiln.ones(3, device="cuda")


def test_autograd_through_to():
    x = kiln.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x.to("cuda") * 3
    y.backward(kiln.ones(3, device="cuda"))
    assert x.grad.device == kiln.device("cpu")
    assert_close(x.grad, kiln.full((3,), 3.0))


# ---- elementwise -----------------------------------------------------------------------

BINARY = ["add", "sub", "mul", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge"]
BINARY_FLOAT = ["div", "pow", "atan2", "hypot", "fmod", "remainder", "fmax", "fmin"]
SHAPES = [((5, 4), (5, 4)), ((5, 4), (4,)), ((3, 1, 4), (2, 1)), ((1000,), ()), ((257, 3), (257, 3))]


def _binary_case(name, dtype, sa, sb):
    torch = require_torch()
    a, b = sample(sa, dtype, 1), sample(sb, dtype, 2)
    if name == "pow" and dtype.is_floating_point:
        a = np.abs(a) + 0.5
    ka, kb = kiln.tensor(a).to(dtype), kiln.tensor(b).to(dtype)
    got = getattr(kiln, name)(ka.cuda(), kb.cuda())
    assert got.device == kiln.device("cuda:0")
    assert_close(back(got), getattr(kiln, name)(ka, kb))
    ta, tb = torch.tensor(a).to(torch_dtype(dtype)), torch.tensor(b).to(torch_dtype(dtype))
    assert_close(back(got), getattr(torch, name)(ta, tb))


@pytest.mark.parametrize("shapes", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [kiln.float32, kiln.float64, kiln.float16, kiln.bfloat16,
                                   kiln.int64, kiln.int32, kiln.uint8], ids=str)
@pytest.mark.parametrize("name", BINARY)
def test_binary(name, dtype, shapes):
    _binary_case(name, dtype, *shapes)


@pytest.mark.parametrize("shapes", SHAPES[:3], ids=str)
@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("name", BINARY_FLOAT)
def test_binary_float(name, dtype, shapes):
    _binary_case(name, dtype, *shapes)


def test_binary_noncontiguous_and_scalars():
    torch = require_torch()
    a = randn(6, 8, dtype=np.float32)
    k, t = kiln.tensor(a).cuda(), torch.tensor(a)
    assert_close(back(k.t() * 2.5 + k.t()), t.t() * 2.5 + t.t())
    assert_close(back(k[:, ::2] - k[:, 1::2]), t[:, ::2] - t[:, 1::2])
    assert_close(back(3 - k), 3 - t)
    out = k.clone()
    out += 1
    assert_close(back(out), t + 1)


def test_large_contiguous_add_vectorized_and_tail():
    torch = require_torch()
    for n in (1 << 20, (1 << 20) + 3):  # the tail exercises the non-vector remainder
        a, b = randn(n, dtype=np.float32), randn(n, dtype=np.float32)
        got = kiln.tensor(a).cuda() + kiln.tensor(b).cuda()
        assert_close(back(got), torch.tensor(a) + torch.tensor(b))
    # An offset view is not 16-byte aligned: the strided kernel handles it.
    a = randn(1001, dtype=np.float32)
    k = kiln.tensor(a).cuda()[1:]
    assert_close(back(k + k), torch.tensor(a)[1:] * 2)


UNARY_FLOAT = ["exp", "log", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid", "erf", "expm1",
               "log1p", "floor", "ceil", "round", "trunc", "reciprocal"]
UNARY_ALL = ["neg", "abs", "sign", "square"]


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("name", UNARY_FLOAT)
def test_unary_float(name, dtype):
    torch = require_torch()
    a = sample((33, 7), dtype)
    if name in ("log", "sqrt", "rsqrt", "log1p"):
        a = np.abs(a) + 0.1
    k = kiln.tensor(a).to(dtype)
    got = getattr(kiln, name)(k.cuda())
    assert_close(back(got), getattr(kiln, name)(k))
    assert_close(back(got), getattr(torch, name)(torch.tensor(a).to(torch_dtype(dtype))))


@pytest.mark.parametrize("dtype", [kiln.float32, kiln.float16, kiln.int64, kiln.int8], ids=str)
@pytest.mark.parametrize("name", UNARY_ALL)
def test_unary_all(name, dtype):
    k = kiln.tensor(sample((9, 4), dtype)).to(dtype)
    assert_close(back(getattr(kiln, name)(k.cuda())), getattr(kiln, name)(k))


@pytest.mark.parametrize("name", ["relu", "gelu", "silu", "softplus"])
def test_activations(name):
    torch = require_torch()
    a = randn(50, dtype=np.float32)
    got = getattr(kiln.nn.functional, name)(kiln.tensor(a).cuda())
    assert_close(back(got), getattr(torch.nn.functional, name)(torch.tensor(a)))


def test_predicates():
    a = np.array([0.0, np.nan, np.inf, -np.inf, 1.0], dtype=np.float32)
    k = kiln.tensor(a)
    for name in ("isnan", "isinf", "isfinite", "isposinf", "isneginf", "logical_not"):
        assert_close(back(getattr(kiln, name)(k.cuda())), getattr(kiln, name)(k))


# ---- matmul ----------------------------------------------------------------------------

MATMUL = [((4, 5), (5, 3)), ((1, 7), (7, 1)), ((3, 4, 5), (3, 5, 2)), ((2, 3, 4, 5), (5, 6)),
          ((5,), (5, 3)), ((64, 128), (128, 96)), ((3, 0), (0, 4))]


@pytest.mark.parametrize("shapes", MATMUL, ids=str)
@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_matmul(dtype, shapes):
    torch = require_torch()
    a, b = randn(*shapes[0]), randn(*shapes[1])
    ka, kb = kiln.tensor(a).to(dtype), kiln.tensor(b).to(dtype)
    got = kiln.matmul(ka.cuda(), kb.cuda())
    tol = {kiln.float64: 1e-10, kiln.float32: 1e-4}.get(dtype, 3e-2)
    assert_close(back(got), kiln.matmul(ka, kb), rtol=tol, atol=tol)
    # The reference multiplies the same rounded inputs exactly, then rounds once.
    td = torch_dtype(dtype)
    ref = torch.matmul(torch.tensor(a).to(td).double(), torch.tensor(b).to(td).double()).to(td)
    assert_close(back(got), ref, rtol=tol, atol=tol)


def test_matmul_transposed_operands():
    torch = require_torch()
    a, b = randn(6, 4, dtype=np.float32), randn(5, 6, dtype=np.float32)
    ka, kb, ta, tb = kiln.tensor(a).cuda(), kiln.tensor(b).cuda(), torch.tensor(a), torch.tensor(b)
    assert_close(back(ka.t() @ kb.t()), ta.t() @ tb.t(), rtol=1e-4, atol=1e-4)
    assert_close(back(ka[:, ::2].t() @ ka[:, ::2]), ta[:, ::2].t() @ ta[:, ::2], rtol=1e-4,
                 atol=1e-4)


def test_matmul_row_stride_past_int32():
    """A row stride over 2^31 - 1 elements does not fit cuBLAS's int leading dimension:
    the operand is copied first (was cast to int: a cuBLAS error or a wrong product).
    Needs about 8.6 GB of GPU memory."""
    n = 2**31 + 16
    big = kiln.zeros(2 * n, dtype=kiln.float16, device="cuda")
    rows = kiln.tensor(randn(2, 8)).to(kiln.float16)
    a = big.as_strided((2, 8), (n, 1))
    a.copy_(rows.cuda())
    b = kiln.tensor(randn(8, 4, rng=np.random.default_rng(1))).to(kiln.float16)
    got = a @ b.cuda()
    del big, a
    assert_close(back(got), rows @ b, rtol=3e-2, atol=3e-2)


def test_matmul_tf32_switch():
    a, b = randn(256, 256, dtype=np.float32), randn(256, 256, dtype=np.float32)
    ref = kiln.tensor(a) @ kiln.tensor(b)
    m = kiln.backends.cuda.matmul
    try:
        m.allow_tf32 = True
        assert_close(back(kiln.tensor(a).cuda() @ kiln.tensor(b).cuda()), ref, rtol=5e-2, atol=5e-2)
    finally:
        m.allow_tf32 = False
    assert_close(back(kiln.tensor(a).cuda() @ kiln.tensor(b).cuda()), ref, rtol=1e-4, atol=1e-4)


def test_conv_tf32_switch():
    F = kiln.nn.functional
    x, w = randn(2, 64, 16, 16, dtype=np.float32), randn(32, 64, 3, 3, dtype=np.float32)
    ref = F.conv2d(kiln.tensor(x), kiln.tensor(w), padding=1)
    c = kiln.backends.cudnn
    assert c.allow_tf32  # TF32 by default, as PyTorch's convolutions
    assert_close(back(F.conv2d(kiln.tensor(x).cuda(), kiln.tensor(w).cuda(), padding=1)), ref,
                 rtol=5e-2, atol=5e-2)
    try:
        c.allow_tf32 = False
        assert_close(back(F.conv2d(kiln.tensor(x).cuda(), kiln.tensor(w).cuda(), padding=1)), ref,
                     rtol=1e-4, atol=1e-4)
    finally:
        c.allow_tf32 = True


def test_linear_module_to_cuda():
    m = kiln.nn.Linear(8, 4)
    x = kiln.tensor(randn(5, 8, dtype=np.float32))
    expected = m(x)
    m.to("cuda")
    assert all(p.device == kiln.device("cuda:0") for p in m.parameters())
    assert_close(back(m(x.cuda())), expected, rtol=1e-4, atol=1e-4)


def test_matmul_rejects_integers():
    with pytest.raises(TypeError, match="matmul"):
        kiln.ones(2, 2, dtype=kiln.int64, device="cuda") @ kiln.ones(2, 2, dtype=kiln.int64,
                                                                     device="cuda")


# ---- memory, streams, events, pinned memory --------------------------------------------


def test_memory_stats():
    kiln.cuda.synchronize()
    base = kiln.cuda.memory_allocated()
    kiln.cuda.reset_peak_memory_stats()
    x = kiln.empty(1 << 20, device="cuda")  # 4 MiB
    assert kiln.cuda.memory_allocated() == base + 4 * (1 << 20)
    assert kiln.cuda.max_memory_allocated() >= base + 4 * (1 << 20)
    del x
    assert kiln.cuda.memory_allocated() == base
    assert kiln.cuda.max_memory_allocated() >= base + 4 * (1 << 20)
    kiln.cuda.reset_peak_memory_stats()
    assert kiln.cuda.max_memory_allocated() == base
    kiln.cuda.empty_cache()


def test_out_of_memory_is_an_exception():
    with pytest.raises(RuntimeError, match="out of memory"):
        kiln.empty(1 << 48, dtype=kiln.uint8, device="cuda")
    assert_close(back(kiln.ones(3, device="cuda")), kiln.ones(3))  # still usable


def test_stream_and_events():
    s = kiln.cuda.Stream()
    start, end = kiln.cuda.Event(enable_timing=True), kiln.cuda.Event(enable_timing=True)
    x = kiln.ones(1 << 20, device="cuda")
    s.wait_stream(kiln.cuda.current_stream())
    with kiln.cuda.stream(s):
        assert kiln.cuda.current_stream() == s
        start.record()
        y = x * 2 + 1
        end.record()
    assert kiln.cuda.current_stream() == kiln.cuda.default_stream()
    end.synchronize()
    assert end.query() and s.query()
    assert start.elapsed_time(end) >= 0.0
    kiln.cuda.current_stream().wait_stream(s)
    assert_close(back(y[:4]), kiln.full((4,), 3.0))


def test_pinned_memory_and_non_blocking():
    x = kiln.arange(12.0).reshape(3, 4)
    p = x.pin_memory()
    assert p.is_pinned() and not x.is_pinned()
    assert_close(p, x)
    d = p.to("cuda", non_blocking=True)
    kiln.cuda.synchronize()
    assert_close(back(d), x)


def test_non_blocking_device_to_host_into_pinned_memory():
    src = kiln.arange(1 << 20, dtype=kiln.float32, device="cuda") * 2
    dst = kiln.zeros(1 << 20).pin_memory()
    dst.copy_(src, non_blocking=True)
    kiln.cuda.current_stream().synchronize()
    assert_close(dst, kiln.arange(1 << 20, dtype=kiln.float32) * 2)
    # Into pageable or non-contiguous memory a non-blocking copy still completes before returning.
    pageable = kiln.zeros(4, 3).t()
    pageable.copy_(kiln.ones(3, 4, device="cuda"), non_blocking=True)
    assert_close(pageable, kiln.ones(3, 4))


def test_blocking_host_to_device_from_pinned_memory_is_complete_on_return():
    p = kiln.ones(1 << 20).pin_memory()
    d = p.cuda()  # non_blocking=False: p may be overwritten right away
    p.fill_(5.0)
    assert_close(back(d[:3]), kiln.ones(3))


def test_record_stream_keeps_memory_until_the_stream_is_done():
    s = kiln.cuda.Stream()
    x = kiln.ones(1 << 22, device="cuda")
    s.wait_stream(kiln.cuda.current_stream())
    with kiln.cuda.stream(s):
        y = (x * 3).sum()
    x.record_stream(s)
    del x  # freed in the default stream's order, after s's work
    z = kiln.zeros(1 << 22, device="cuda")  # may reuse x's memory
    kiln.cuda.current_stream().wait_stream(s)
    assert back(y).item() == 3 * (1 << 22)
    assert back(z.sum()).item() == 0
    with pytest.raises(RuntimeError, match="record_stream"):
        kiln.ones(3).record_stream(s)


def test_tensors_outlive_the_stream_they_were_allocated_under():
    # Each block is freed after its kiln.cuda.Stream object is gone; the free must still
    # happen (in that stream's order), else 40 rounds of 4 GiB exhaust the device.
    x = kiln.ones(1 << 20, device="cuda")
    for _ in range(40):
        s = kiln.cuda.Stream()
        s.wait_stream(kiln.cuda.current_stream())
        with kiln.cuda.stream(s):
            big = kiln.empty(1 << 32, dtype=kiln.uint8, device="cuda")
            y = x * 2
        kiln.cuda.current_stream().wait_stream(s)
        del s
        assert back(y.sum()).item() == 2 * (1 << 20)
        del big, y
        kiln.cuda.synchronize()  # the free has run: the next round may reuse the memory


@pytest.mark.skipif(kiln.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_memory_of_another_device_is_freed_in_its_streams_order():
    # Freed while cuda:0 is current: the free (and its wait for s) belongs to cuda:1.
    assert kiln.cuda.current_device() == 0
    base = kiln.cuda.memory_allocated(1)
    s = kiln.cuda.Stream(device=1)
    x = kiln.ones(1 << 22, device="cuda:1")
    s.wait_stream(kiln.cuda.current_stream(1))
    with kiln.cuda.stream(s):
        y = (x * 3).sum()
    x.record_stream(s)
    del x
    z = kiln.zeros(1 << 22, device="cuda:1")  # may reuse x's memory
    kiln.cuda.current_stream(1).wait_stream(s)
    assert back(y).item() == 3 * (1 << 22)
    assert back(z.sum()).item() == 0
    del y, z
    kiln.cuda.synchronize(1)
    assert kiln.cuda.memory_allocated(1) == base


def test_data_loader_pins_batches():
    from kiln.utils.data import DataLoader

    data = {"x": np.arange(12, dtype=np.float32).reshape(6, 2), "y": np.arange(6)}
    rows = [{"x": data["x"][i], "y": data["y"][i]} for i in range(6)]
    for workers in (0, 2):
        batches = list(DataLoader(rows, batch_size=3, pin_memory=True, num_workers=workers))
        assert all(b["x"].is_pinned() and b["y"].is_pinned() for b in batches)
        assert_close(batches[1]["x"].cuda(non_blocking=True).cpu(), kiln.tensor(data["x"][3:]))


def test_manual_seed_reaches_the_cuda_generator():
    kiln.cuda.manual_seed(123)
    assert kiln._C._default_generator(kiln.device("cuda")).initial_seed() == 123


# ---- DLPack with PyTorch on the same GPU ------------------------------------------------


def test_dlpack_round_trip_with_torch_cuda():
    torch = require_torch()
    if not torch.cuda.is_available():
        pytest.skip("this PyTorch has no CUDA")
    k = kiln.arange(12.0, device="cuda").reshape(3, 4) * 2  # queued on kiln's current stream
    t = torch.from_dlpack(k)  # torch's stream waits for kiln's work
    assert t.device.type == "cuda" and t.data_ptr() == k.data_ptr()
    assert t.sum().item() == 132.0
    t2 = torch.arange(6.0, device="cuda").reshape(2, 3).t()
    k2 = kiln.from_dlpack(t2)
    assert k2.device == kiln.device("cuda:0") and k2.data_ptr() == t2.data_ptr()
    assert_close(back(k2), kiln.arange(6.0).reshape(2, 3).t())
    s = kiln.cuda.Stream()
    with kiln.cuda.stream(s):  # kiln on a side stream: the export still orders torch after it
        k3 = kiln.ones(1 << 22, device="cuda") * 3
        t3 = torch.from_dlpack(k3)
    assert t3.sum().item() == 3 * (1 << 22)


# ---- modules built on the GPU -----------------------------------------------------------


@pytest.mark.parametrize("build", [
    lambda d: kiln.nn.Linear(4, 3, device=d), lambda d: kiln.nn.Conv2d(2, 3, 3, device=d),
    lambda d: kiln.nn.BatchNorm1d(4, device=d), lambda d: kiln.nn.LayerNorm(4, device=d),
    lambda d: kiln.nn.Embedding(5, 4, device=d), lambda d: kiln.nn.LSTM(4, 3, device=d),
    lambda d: kiln.nn.MultiheadAttention(4, 2, device=d),
    lambda d: kiln.nn.TransformerEncoderLayer(8, 2, 16, device=d),
], ids=["Linear", "Conv2d", "BatchNorm1d", "LayerNorm", "Embedding", "LSTM", "MHA", "Encoder"])
def test_modules_take_device(build):
    m = build("cuda")
    tensors = list(m.parameters()) + list(m.buffers())
    assert tensors and all(t.device == kiln.device("cuda:0") for t in tensors)


def test_functional_helpers_stay_on_the_input_device():
    F = kiln.nn.functional
    x = kiln.arange(24.0).reshape(1, 2, 3, 4)
    for mode in ("constant", "reflect", "replicate", "circular"):
        assert_close(back(F.pad(x.cuda(), (1, 1, 1, 1), mode=mode)), F.pad(x, (1, 1, 1, 1), mode=mode))
    for mode in ("nearest", "bilinear"):
        assert_close(back(F.interpolate(x.cuda(), scale_factor=2, mode=mode)),
                     F.interpolate(x, scale_factor=2, mode=mode))
    rnn = kiln.nn.GRU(4, 3, batch_first=True)
    seq = kiln.randn(2, 5, 4)
    want, _ = rnn(seq)
    got, _ = rnn.cuda()(seq.cuda())
    assert_close(back(got), want, atol=1e-5, rtol=1e-5)
