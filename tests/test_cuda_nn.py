"""CUDA kernels of the nn families (convolution, pooling, fused optimizer steps, fused
attention) and the benchmarks' training steps: results and gradients on the GPU against
kiln's CPU results (and PyTorch's where noted).

Every test is marked `cuda` and skips without a GPU. Run on a GPU machine with:
    cd tests && python -m pytest -q test_cuda_nn.py
"""

import contextlib
import os
import sys
from pathlib import Path

import kiln
import kiln.nn.functional as F
import numpy as np
import pytest
from compare import assert_close, randn, require_torch, torch_dtype
from test_cuda import back

pytestmark = pytest.mark.cuda

HALF = (kiln.float16, kiln.bfloat16)


@pytest.fixture(autouse=True)
def full_float32_convolutions():
    """float32 convolutions are compared with the CPU's, so no TF32 (on by default, as in
    PyTorch); test_cuda.py::test_conv_tf32_switch covers TF32."""
    flags = kiln.backends.cudnn
    saved, flags.allow_tf32 = flags.allow_tf32, False
    yield
    flags.allow_tf32 = saved


def tol(dtype):
    """GPU vs CPU: other summation orders (GEMM tiles, atomics), so looser than bitwise."""
    if dtype in HALF:
        return 2e-2
    return 1e-9 if dtype == kiln.float64 else 2e-4


def pair(arr, dtype, requires_grad=False):
    """The same values as a CPU tensor and a CUDA tensor, both leaves."""
    host = kiln.tensor(np.asarray(arr)).to(dtype)
    dev = host.cuda()
    if requires_grad:
        host.requires_grad_(True)
        dev.requires_grad_(True)
    return host, dev


def check_both(fn, arrays, dtype=kiln.float32, grad=True, rtol=None):
    """fn on CPU and on CUDA copies of `arrays`: equal outputs and, with a random upstream
    gradient, equal input gradients. fn returns a tensor or a tuple whose first is the value."""
    rtol = tol(dtype) if rtol is None else rtol
    pairs = [pair(a, dtype, grad) for a in arrays]
    hosts, devs = [p[0] for p in pairs], [p[1] for p in pairs]
    out_h, out_d = fn(*hosts), fn(*devs)
    if isinstance(out_h, tuple):
        for h, d in zip(out_h[1:], out_d[1:]):
            assert_close(back(d), h)  # indices and the like: exact
        out_h, out_d = out_h[0], out_d[0]
    assert_close(back(out_d), out_h, rtol=rtol, atol=rtol)
    if not grad:
        return
    g = kiln.tensor(randn(*out_h.shape, rng=np.random.default_rng(7))).to(dtype)
    out_h.backward(g)
    out_d.backward(g.cuda())
    for h, d in zip(hosts, devs):
        assert_close(back(d.grad), h.grad, rtol=rtol, atol=rtol)


# ---- convolution -------------------------------------------------------------------------


@pytest.fixture(params=["cudnn", "im2col"])
def conv_path(request):
    """Each convolution test runs through cuDNN and through kiln's im2col + cuBLAS path
    (kiln.backends.cudnn.enabled = False)."""
    c = kiln.backends.cudnn
    if request.param == "cudnn" and not c.is_available():
        pytest.skip(f"cuDNN: {c.is_available(explain=True).reason}")
    saved, c.enabled = c.enabled, request.param == "cudnn"
    yield request.param
    c.enabled = saved


conv_paths = pytest.mark.usefixtures("conv_path")


def test_cudnn_available_when_expected():
    """tools/gpu-session sets KILN_EXPECT_CUDNN=1: the GPU machine has cuDNN (PyTorch's)."""
    if os.environ.get("KILN_EXPECT_CUDNN") != "1":
        pytest.skip("KILN_EXPECT_CUDNN is not set")
    c = kiln.backends.cudnn
    assert c.is_available(), c.is_available(explain=True).reason
    assert c.version() // 10000 == 9

CONV2D = [
    # (N, C, H, W), (O, C/groups, kh, kw), stride, padding, dilation, groups
    ((2, 3, 9, 8), (4, 3, 3, 3), 1, 1, 1, 1),
    ((2, 4, 10, 7), (6, 2, 3, 2), (2, 1), (1, 0), 1, 2),
    ((1, 6, 11, 11), (6, 1, 3, 3), 2, 2, 2, 6),  # depthwise, dilated
    ((3, 8, 6, 6), (5, 8, 1, 1), 1, 0, 1, 1),  # 1x1: the image is its own columns
    ((2, 3, 7, 9), (4, 3, 5, 4), 3, (2, 1), (1, 2), 1),
    ((0, 3, 5, 5), (2, 3, 3, 3), 1, 1, 1, 1),  # empty batch
]


@conv_paths
@pytest.mark.parametrize("dtype", [kiln.float32, kiln.float64], ids=str)
@pytest.mark.parametrize("xs,ws,stride,padding,dilation,groups", CONV2D)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d(dtype, xs, ws, stride, padding, dilation, groups, bias):
    arrays = [randn(*xs), randn(*ws, rng=np.random.default_rng(1))]
    if bias:
        arrays.append(randn(ws[0], rng=np.random.default_rng(2)))
    check_both(
        lambda x, w, *b: F.conv2d(x, w, b[0] if b else None, stride, padding, dilation, groups),
        arrays,
        dtype,
    )


@pytest.mark.parametrize(
    "dtype,tf32",
    [(kiln.float32, False), (kiln.float32, True), (kiln.float64, False), *((d, False) for d in HALF)],
    ids=["float32", "float32-tf32", "float64", "float16", "bfloat16"],
)
def test_cudnn_runs_the_convolutions_it_should(dtype, tf32):
    """Forward, input and weight gradients of a plain, a strided grouped and a transposed
    convolution each run through cuDNN (3 passes apiece), not an unnoticed im2col
    fallback; with kiln.backends.cudnn.enabled off, none do."""
    c = kiln.backends.cudnn
    if not c.is_available():
        pytest.skip(f"cuDNN: {c.is_available(explain=True).reason}")
    if dtype == kiln.bfloat16 and kiln.cuda._module.get_device_properties(0)["major"] < 8:
        pytest.skip("cuDNN's bfloat16 convolutions need compute capability 8.0")
    x = kiln.tensor(randn(2, 4, 9, 9)).to(dtype).cuda().requires_grad_(True)
    w = kiln.tensor(randn(6, 4, 3, 3, rng=np.random.default_rng(1))).to(dtype).cuda()
    wg = kiln.tensor(randn(6, 2, 3, 3, rng=np.random.default_rng(2))).to(dtype).cuda()
    wt = kiln.tensor(randn(4, 3, 3, 3, rng=np.random.default_rng(3))).to(dtype).cuda()
    convs = [
        lambda: F.conv2d(x, w.requires_grad_(True), padding=1),
        lambda: F.conv2d(x, wg.requires_grad_(True), stride=2, padding=1, groups=2),
        lambda: F.conv_transpose2d(x, wt.requires_grad_(True), stride=2, padding=1),
    ]
    run = kiln.cuda._module._cudnn_convolutions_run
    saved = c.allow_tf32
    try:
        c.allow_tf32 = tf32
        for conv in convs:
            before = run()
            conv().sum().backward()
            assert run() - before == 3
        c.enabled = False
        before = run()
        for conv in convs:
            conv().sum().backward()
        assert run() == before
    finally:
        c.enabled, c.allow_tf32 = True, saved


def test_cudnn_deterministic_gives_identical_gradients():
    """kiln.backends.cudnn.deterministic: the same weight gradient, bit for bit, every run
    (cuDNN's filter-gradient algorithms may otherwise sum with atomics)."""
    x = kiln.tensor(randn(64, 32, 16, 16)).float().cuda()
    w = kiln.tensor(randn(32, 32, 3, 3, rng=np.random.default_rng(1))).float().cuda()
    g = kiln.tensor(randn(64, 32, 16, 16, rng=np.random.default_rng(2))).float().cuda()

    def weight_grad():
        wg = w.detach().requires_grad_(True)
        F.conv2d(x, wg, padding=1).backward(g)
        return back(wg.grad).numpy()

    assert_deterministic(weight_grad, 1e-3)


def assert_deterministic(compute, tol):
    """Under kiln.backends.cudnn.deterministic, compute() returns the same array bit for bit
    every time; without, one within tol of it."""
    c = kiln.backends.cudnn
    saved, c.deterministic = c.deterministic, True
    try:
        first = compute()
        for _ in range(3):
            np.testing.assert_array_equal(compute(), first)
    finally:
        c.deterministic = saved
    assert_close(kiln.tensor(compute()), kiln.tensor(first), rtol=tol, atol=tol)


@conv_paths
def test_conv2d_size_one_dims_of_any_stride():
    # Contiguous to kiln, whatever the strides of their size-1 dims (a new batch dim from
    # expand has stride 0; a channel dim moved by permute keeps stride 1): cuDNN gets packed
    # NCHW strides.
    check_both(lambda x, w: F.conv2d(x.expand(1, 3, 9, 9), w, padding=1),
               [randn(3, 9, 9), randn(4, 3, 3, 3, rng=np.random.default_rng(1))])
    check_both(lambda x, w: F.conv2d(x.permute(0, 3, 1, 2), w),
               [randn(2, 9, 9, 1), randn(4, 1, 3, 3, rng=np.random.default_rng(1))])


@conv_paths
@pytest.mark.parametrize("dtype", [kiln.float32, *HALF], ids=str)
def test_conv2d_of_a_view_not_16_byte_aligned(dtype):
    # x[1:] starts one image in: a contiguous view whose data is not 16-byte aligned for
    # odd image sizes (cuDNN then leaves it to im2col).
    check_both(lambda x, w: F.conv2d(x[1:], w, padding=1),
               [randn(3, 3, 5, 5), randn(4, 3, 3, 3, rng=np.random.default_rng(1))], dtype)


@conv_paths
def test_conv2d_noncontiguous_input_and_same_padding():
    x, w = randn(2, 3, 8, 10), randn(4, 3, 2, 4, rng=np.random.default_rng(1))
    check_both(lambda x, w: F.conv2d(x.transpose(2, 3), w, padding="same"), [x, w])
    check_both(lambda x, w: F.conv2d(x[:, :, ::2], w, padding="same", dilation=2), [x, w])


@conv_paths
@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_conv2d_half(dtype):
    x, w, b = randn(2, 4, 8, 8), randn(6, 2, 3, 3, rng=np.random.default_rng(1)), randn(6)
    check_both(lambda x, w, b: F.conv2d(x, w, b, 1, 1, 1, 2), [x, w, b], dtype)


@conv_paths
@pytest.mark.parametrize(
    "xs,ws,stride,padding,output_padding,groups,dilation",
    [
        ((2, 4, 5, 6), (4, 3, 3, 3), 1, 0, 0, 1, 1),
        ((2, 4, 5, 6), (4, 2, 3, 2), 2, 1, 1, 2, 1),
        ((1, 3, 4, 4), (3, 2, 3, 3), (2, 3), (1, 0), (1, 2), 1, (2, 1)),
        ((3, 6, 5, 5), (6, 4, 1, 1), 1, 0, 0, 1, 1),  # 1x1: the output is the columns
        ((1, 2, 4, 4), (2, 3, 1, 1), 1, 0, 1, 1, 2),  # 1x1 with output_padding: not direct
    ],
)
def test_conv_transpose2d(xs, ws, stride, padding, output_padding, groups, dilation):
    arrays = [randn(*xs), randn(*ws, rng=np.random.default_rng(1)), randn(ws[1] * groups)]
    check_both(
        lambda x, w, b: F.conv_transpose2d(
            x, w, b, stride, padding, output_padding, groups, dilation
        ),
        arrays,
    )


@conv_paths
def test_conv1d_and_conv_transpose1d():
    x, w = randn(3, 4, 17), randn(6, 2, 5, rng=np.random.default_rng(1))
    check_both(lambda x, w: F.conv1d(x, w, None, 2, 3, 2, 2), [x, w])
    wt = randn(4, 3, 4, rng=np.random.default_rng(2))
    check_both(lambda x, w: F.conv_transpose1d(x, w, None, 3, 1, 2, 1, 1), [x, wt])


@conv_paths
@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_conv_module_padding_modes(mode):
    kiln.manual_seed(0)
    conv = kiln.nn.Conv2d(3, 5, 3, padding=2, padding_mode=mode)
    x = kiln.tensor(randn(2, 3, 7, 6)).float()
    out_h = conv(x)
    out_d = conv.to("cuda")(x.cuda())
    assert_close(back(out_d), out_h, rtol=2e-4, atol=2e-4)


def test_unfold_fold():
    x = randn(2, 3, 7, 8)
    check_both(lambda x: F.unfold(x, (2, 3), dilation=(1, 2), padding=1, stride=(2, 1)), [x])
    cols = randn(2, 3 * 2 * 3, 12)
    check_both(lambda c: F.fold(c, (5, 6), (2, 3), padding=(0, 1), stride=(1, 2)), [cols])


@conv_paths
def test_conv2d_against_torch():
    torch = require_torch()
    x, w, b = randn(2, 4, 9, 9), randn(8, 2, 3, 3, rng=np.random.default_rng(1)), randn(8)
    out = F.conv2d(*(kiln.tensor(a).float().cuda() for a in (x, w, b)), 2, 1, 1, 2)
    ref = torch.nn.functional.conv2d(*(torch.tensor(a).float() for a in (x, w, b)), 2, 1, 1, 2)
    assert_close(back(out), ref, rtol=2e-4, atol=2e-4)


# ---- pooling -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [kiln.float32, kiln.float64, *HALF], ids=str)
@pytest.mark.parametrize(
    "kernel,stride,padding,dilation,ceil_mode",
    [
        (2, None, 0, 1, False),
        (3, 1, 1, 1, False),
        (3, 2, 1, 2, True),
        ((2, 3), (1, 2), (1, 1), 1, True),
    ],
)
def test_max_pool2d(dtype, kernel, stride, padding, dilation, ceil_mode):
    # Overlapping windows (stride < kernel) share argmaxes: the backward's atomics add up.
    check_both(
        lambda x: F.max_pool2d(
            x, kernel, stride, padding, dilation, ceil_mode, return_indices=True
        ),
        [randn(2, 3, 9, 10)],
        dtype,
    )


@pytest.mark.parametrize("dtype", [kiln.float32, kiln.float64, *HALF], ids=str)
@pytest.mark.parametrize(
    "kernel,stride,padding,ceil_mode,count_include_pad,divisor",
    [
        (2, None, 0, False, True, None),
        (3, 2, 1, True, False, None),
        (3, 1, 1, False, True, None),
        ((3, 2), (2, 1), (1, 0), True, True, 5),
    ],
)
def test_avg_pool2d(dtype, kernel, stride, padding, ceil_mode, count_include_pad, divisor):
    check_both(
        lambda x: F.avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor),
        [randn(2, 3, 9, 10)],
        dtype,
    )


@pytest.mark.parametrize("out", [(1, 1), (3, 4), (5, 7), (9, 10), (4, None)])
def test_adaptive_pools(out):
    x = [randn(2, 3, 9, 10)]
    check_both(lambda x: F.adaptive_avg_pool2d(x, out), x)
    check_both(lambda x: F.adaptive_max_pool2d(x, out, return_indices=True), x)


def test_pool1d_and_noncontiguous():
    check_both(lambda x: F.max_pool1d(x, 3, 2, 1, ceil_mode=True), [randn(2, 4, 11)])
    check_both(lambda x: F.avg_pool1d(x, 4, 3, 2, True, False), [randn(2, 4, 11)])
    check_both(lambda x: F.max_pool2d(x.transpose(2, 3), 2), [randn(2, 3, 8, 6)])


def test_max_pool2d_against_torch():
    torch = require_torch()
    x = randn(2, 3, 10, 10)
    out, idx = F.max_pool2d(kiln.tensor(x).cuda(), 3, 2, 1, return_indices=True)
    ref, ref_idx = torch.nn.functional.max_pool2d(torch.tensor(x), 3, 2, 1, return_indices=True)
    assert_close(back(out), ref)
    assert_close(back(idx), ref_idx)


# ---- fused optimizer steps ---------------------------------------------------------------

OPTIMIZERS = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "maximize": True}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True, "maximize": True}),
    ("AdamW", {"lr": 0.01, "amsgrad": True}),
    ("RMSprop", {"lr": 0.01}),
    (
        "RMSprop",
        {"lr": 0.01, "centered": True, "momentum": 0.5, "weight_decay": 0.1, "maximize": True},
    ),
    (
        "Adagrad",
        {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.1, "initial_accumulator_value": 0.5},
    ),
    ("Adadelta", {"lr": 1.0, "weight_decay": 0.1, "maximize": True}),
    ("Adamax", {"lr": 0.01, "weight_decay": 0.1}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.1}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("RAdam", {"lr": 0.01, "weight_decay": 0.1}),
    ("RAdam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
]


def run_optimizer(name, options, params, grads, steps):
    opt = getattr(kiln.optim, name)(params, **options)
    for s in range(steps):
        for p, g in zip(params, grads):
            p.grad = g * (1.0 + s)
        opt.step()


def optimizer_pair(shapes, dtype, name, options, steps=4):
    rng = np.random.default_rng(0)
    values = [rng.standard_normal(s) for s in shapes]
    grads = [rng.standard_normal(s) for s in shapes]
    host = [kiln.tensor(v).to(dtype).requires_grad_(True) for v in values]
    dev = [kiln.tensor(v).to(dtype).cuda().requires_grad_(True) for v in values]
    hg = [kiln.tensor(g).to(dtype) for g in grads]
    run_optimizer(name, options, host, hg, steps)
    run_optimizer(name, options, dev, [g.cuda() for g in hg], steps)
    for h, d in zip(host, dev):
        assert_close(back(d.detach()), h.detach(), rtol=tol(dtype), atol=tol(dtype))


@pytest.mark.parametrize("dtype", [kiln.float32, kiln.float64, kiln.bfloat16], ids=str)
@pytest.mark.parametrize("name,options", OPTIMIZERS)
def test_optimizer_matches_cpu(dtype, name, options):
    # An empty param, a non-contiguous one is not possible for leaves, so: odd sizes.
    optimizer_pair([(3, 4), (0,), (70001,), (5,)], dtype, name, options)


@pytest.mark.parametrize("name,options", [OPTIMIZERS[1], OPTIMIZERS[4], OPTIMIZERS[11]])
def test_optimizer_many_and_large_params(name, options):
    # More params than one launch holds, and one param spanning several launches.
    shapes = [(7,)] * 40 + [(65536 * 200 + 3,), (2, 3)]
    optimizer_pair(shapes, kiln.float32, name, options, steps=2)


def test_optimizer_state_dict_round_trip_on_cuda():
    p = kiln.tensor(randn(4, 3)).float().cuda().requires_grad_(True)
    opt = kiln.optim.Adam([p], lr=0.1)
    p.grad = kiln.ones(4, 3, device="cuda")
    opt.step()
    opt2 = kiln.optim.Adam([p], lr=0.1)
    opt2.load_state_dict(opt.state_dict())
    assert opt2.state[p]["exp_avg"].device.type == "cuda"
    assert opt2.state[p]["step"].device.type == "cpu"
    opt2.step()


# ---- fused attention ---------------------------------------------------------------------


@pytest.fixture(params=["cudnn", "kernels"])
def sdpa_path(request):
    """16-bit attention runs through cuDNN's fused attention and through kiln's own kernels
    or the composed path (kiln.backends.cuda.enable_cudnn_sdp(False))."""
    b = kiln.backends.cuda
    if request.param == "cudnn" and not kiln.backends.cudnn.is_available():
        pytest.skip(f"cuDNN: {kiln.backends.cudnn.is_available(explain=True).reason}")
    saved = b.cudnn_sdp_enabled()
    b.enable_cudnn_sdp(request.param == "cudnn")
    yield request.param
    b.enable_cudnn_sdp(saved)


def skip_cudnn_for_wide_dtypes(sdpa_path, dtype):
    if sdpa_path == "cudnn" and dtype not in HALF:
        pytest.skip("cuDNN's fused attention is 16-bit only: the same test as 'kernels'")


@contextlib.contextmanager
def cudnn_attention_passes(n, expected=True):
    """Where the GPU machine must have cuDNN (KILN_EXPECT_CUDNN=1, tools/gpu-session) and
    `expected`, the block runs exactly n cuDNN attention passes: a test of the cuDNN path
    must not pass on a silent fallback to kiln's kernels."""
    if not expected or os.environ.get("KILN_EXPECT_CUDNN") != "1":
        yield
        return
    m = kiln.cuda._module
    before = m._cudnn_attentions_run()
    yield
    assert m._cudnn_attentions_run() - before == n, m._cudnn_attention_declined()


def sdpa_case(q_shape, k_shape, v_shape, dtype, mask=None, grad=True, **kw):
    arrays = [
        randn(*q_shape),
        randn(*k_shape, rng=np.random.default_rng(1)),
        randn(*v_shape, rng=np.random.default_rng(2)),
    ]
    if mask is None:
        check_both(
            lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **kw), arrays, dtype, grad
        )
        return
    mh, md = mask

    def fn(q, k, v):
        m = md if q.device.type == "cuda" else mh
        return F.scaled_dot_product_attention(q, k, v, attn_mask=m, **kw)

    check_both(fn, arrays, dtype, grad)


@pytest.mark.parametrize("dtype", [kiln.float32, kiln.float16], ids=str)
@pytest.mark.parametrize("masking", ["none", "causal", "bool"])
def test_sdpa_large_scores(dtype, masking, sdpa_path):
    # 32 x 384 x 384 scores: over the fused kernel's composed_is_faster threshold, so
    # composed unless cuDNN takes them (float16 without a bool mask).
    skip_cudnn_for_wide_dtypes(sdpa_path, dtype)
    shape = (4, 8, 384, 32)
    mask = None
    if masking == "bool":
        m = np.random.default_rng(3).random((384, 384)) > 0.3
        mask = (kiln.tensor(m), kiln.tensor(m).cuda())
    sdpa_case(shape, shape, shape, dtype, mask=mask, is_causal=masking == "causal")


def test_attention_module_trains_under_autocast(sdpa_path):
    # 32 x 2 heads x 384 x 384 scores: on cuDNN, else composed. Under bf16 autocast the
    # composed softmax must not switch to float32 (the backward would mix dtypes).
    kiln.manual_seed(0)
    mha = kiln.nn.MultiheadAttention(64, 2, batch_first=True, device="cuda")
    x = kiln.tensor(randn(32, 384, 64, dtype=np.float32)).cuda()
    grads = []
    for amp in (False, True):
        mha.zero_grad()
        with kiln.autocast("cuda", dtype=kiln.bfloat16, enabled=amp):
            out, _ = mha(x, x, x, need_weights=False)
        assert out.dtype == (kiln.bfloat16 if amp else kiln.float32)
        (out.float() * x).sum().backward()
        grads.append(np.concatenate([back(p.grad).numpy().ravel() for p in mha.parameters()]))
    full, low = grads
    assert np.isfinite(low).all()
    assert np.dot(full, low) / (np.linalg.norm(full) * np.linalg.norm(low)) > 0.99


@pytest.mark.parametrize("dtype", [kiln.float32, kiln.float64, *HALF], ids=str)
@pytest.mark.parametrize(
    "E,Ev", [(8, 8), (32, 16), (64, 64), (100, 72), (128, 128), (256, 200), (300, 8)]
)  # 300: over the kernel's limit, composed
@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_head_dims(dtype, E, Ev, causal, sdpa_path):
    skip_cudnn_for_wide_dtypes(sdpa_path, dtype)
    # Head dims every cuDNN 9 takes: its forward and backward must run.
    with cudnn_attention_passes(2, sdpa_path == "cudnn" and E == Ev and E in (32, 64, 128)):
        sdpa_case((2, 3, 37, E), (2, 3, 45, E), (2, 3, 45, Ev), dtype, is_causal=causal)


@pytest.mark.parametrize("dtype", [kiln.float32, *HALF], ids=str)
@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_on_head_views(dtype, causal, sdpa_path):
    """MultiheadAttention's layout: q, k and v are head views of one packed projection
    (cuDNN reads them in place) and the output's heads are merged back."""
    skip_cudnn_for_wide_dtypes(sdpa_path, dtype)
    N, L, H, D = 2, 24, 4, 16

    def fn(x):
        q, k, v = (p.view(N, L, H, D).transpose(1, 2) for p in x.split(H * D, -1))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return out.transpose(1, 2).reshape(N, L, H * D)

    with cudnn_attention_passes(2, sdpa_path == "cudnn"):
        check_both(fn, [randn(N, L, 3 * H * D)], dtype)


@pytest.mark.parametrize("L,S", [(1, 1), (5, 130), (130, 5), (70, 70)])
def test_sdpa_lengths(L, S):
    sdpa_case((2, L, 16), (2, S, 16), (2, S, 24), kiln.float32, is_causal=L <= S, scale=0.3)


@pytest.mark.parametrize("L,S", [(45, 37), (37, 45), (1, 64)])
def test_sdpa_causal_16bit_lengths(L, S, sdpa_path):
    # is_causal is aligned top-left (key j for query i where j <= i), as in PyTorch.
    with cudnn_attention_passes(2, sdpa_path == "cudnn"):
        sdpa_case((2, 2, L, 32), (2, 2, S, 32), (2, 2, S, 16), kiln.bfloat16, is_causal=True)


def test_sdpa_masks_broadcast():
    rng = np.random.default_rng(5)
    bool_mask = rng.random((1, 3, 20, 33)) > 0.4
    bool_mask[..., 0] = True  # every query may attend somewhere
    mh = kiln.tensor(bool_mask)
    sdpa_case((2, 3, 20, 16), (2, 3, 33, 16), (2, 3, 33, 16), kiln.float32, mask=(mh, mh.cuda()))
    add = kiln.tensor(rng.standard_normal((20, 33))).float()
    sdpa_case((2, 3, 20, 16), (2, 3, 33, 16), (2, 3, 33, 16), kiln.float32, mask=(add, add.cuda()))
    kpm = kiln.tensor(rng.standard_normal((2, 1, 1, 33))).to(kiln.bfloat16)
    sdpa_case((2, 3, 20, 16), (2, 3, 33, 16), (2, 3, 33, 16), kiln.bfloat16, mask=(kpm, kpm.cuda()))


def test_sdpa_fully_masked_query_gives_zeros():
    mask = np.ones((1, 20, 33), bool)
    mask[:, 3] = False
    mh = kiln.tensor(mask)
    sdpa_case((2, 20, 16), (2, 33, 16), (2, 33, 8), kiln.float32, mask=(mh, mh.cuda()))
    add = kiln.zeros(20, 33)
    add[5] = float("-inf")
    sdpa_case((2, 20, 16), (2, 33, 16), (2, 33, 8), kiln.float32, mask=(add, add.cuda()))


def test_sdpa_empty_value_dim():
    """Ev == 0: the output is empty, but the fused backward reads the logsumexp, which the
    forward must still write (it returned early: gradients from unset memory)."""
    junk = kiln.full((4096,), float("nan")).cuda()  # leave NaNs in the pool for lse to get
    del junk
    sdpa_case((2, 3, 8), (2, 5, 8), (2, 5, 0), kiln.float32)
    sdpa_case((2, 2, 3, 8), (2, 2, 5, 8), (2, 2, 5, 0), kiln.float16, is_causal=True)


def test_sdpa_nan_propagates():
    q = randn(2, 5, 8)
    q[0, 1, 3] = np.nan  # query 1 of batch 0: all its scores NaN
    k, v = randn(2, 6, 8, rng=np.random.default_rng(1)), randn(2, 6, 4)
    check_both(lambda q, k, v: F.scaled_dot_product_attention(q, k, v), [q, k, v], grad=False)


def test_sdpa_float_mask_gradient():
    rng = np.random.default_rng(6)
    q, k, v = (
        pair(rng.standard_normal(s), kiln.float32, True)
        for s in [(2, 9, 8), (2, 11, 8), (2, 11, 8)]
    )
    m = pair(rng.standard_normal((9, 11)), kiln.float32, True)
    outs = [F.scaled_dot_product_attention(q[i], k[i], v[i], attn_mask=m[i]) for i in (0, 1)]
    for o in outs:
        o.sum().backward()
    assert_close(back(m[1].grad), m[0].grad, rtol=2e-4, atol=2e-4)


def test_sdpa_create_graph_after_fused_forward():
    # create_graph: the backward is composed (differentiable) even after a fused forward.
    rng = np.random.default_rng(8)
    ins = [
        pair(rng.standard_normal(s), kiln.float32, True) for s in [(2, 7, 8), (2, 9, 8), (2, 9, 4)]
    ]
    results = []
    for side in (0, 1):
        q, k, v = (p[side] for p in ins)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        (gq,) = kiln.autograd.grad((out * out).sum(), [q], create_graph=True)
        (gq * gq).sum().backward()
        results.append([gq.detach(), k.grad, v.grad])
    for h, d in zip(results[0], results[1]):
        assert_close(back(d), h, rtol=2e-4, atol=2e-4)


def test_sdpa_gqa_and_mha_module():
    sdpa_case((2, 4, 10, 16), (2, 2, 12, 16), (2, 2, 12, 16), kiln.float32, enable_gqa=True)
    kiln.manual_seed(0)
    mha = kiln.nn.MultiheadAttention(32, 4, batch_first=True)
    x = kiln.tensor(randn(2, 7, 32)).float()
    out_h, _ = mha(x, x, x, need_weights=False)
    out_d, _ = mha.to("cuda")(x.cuda(), x.cuda(), x.cuda(), need_weights=False)
    assert_close(back(out_d), out_h, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("dtype", [kiln.float32, kiln.bfloat16], ids=str)
def test_sdpa_against_torch(dtype):
    torch = require_torch()
    q, k, v = (
        randn(2, 4, 50, 64),
        randn(2, 4, 60, 64, rng=np.random.default_rng(1)),
        randn(2, 4, 60, 32),
    )
    for causal in (False, True):
        out = F.scaled_dot_product_attention(
            *(kiln.tensor(a).to(dtype).cuda() for a in (q, k, v)), is_causal=causal
        )
        ref = torch.nn.functional.scaled_dot_product_attention(
            *(torch.tensor(a).to(torch_dtype(dtype)) for a in (q, k, v)), is_causal=causal
        )
        assert_close(back(out), ref, rtol=tol(dtype), atol=tol(dtype))


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_cudnn_runs_the_attentions_it_should(dtype):
    """16-bit attention without a mask, or causal, runs its forward and backward on cuDNN
    (2 passes), not an unnoticed fallback to kiln's kernels; a bool mask, float32 and
    enable_cudnn_sdp(False) run none."""
    if os.environ.get("KILN_EXPECT_CUDNN") != "1":
        pytest.skip("KILN_EXPECT_CUDNN is not set")
    m = kiln.cuda._module
    run = m._cudnn_attentions_run
    q, k, v = (
        kiln.tensor(randn(2, 4, 40, 64, rng=np.random.default_rng(i))).to(dtype).cuda()
        for i in range(3)
    )
    for t in (q, k, v):
        t.requires_grad_(True)
    for causal in (False, True):
        before = run()
        F.scaled_dot_product_attention(q, k, v, is_causal=causal).sum().backward()
        assert run() - before == 2, m._cudnn_attention_declined()
    # Head views of one packed projection are read in place; the output's heads merge
    # back without a copy.
    x = kiln.tensor(randn(2, 40, 3 * 4 * 64)).to(dtype).cuda()
    hq, hk, hv = (p.view(2, 40, 4, 64).transpose(1, 2) for p in x.split(4 * 64, -1))
    before = run()
    out = F.scaled_dot_product_attention(hq, hk, hv)
    assert run() - before == 1, m._cudnn_attention_declined()
    assert out.transpose(1, 2).is_contiguous()
    before = run()
    mask = kiln.ones(40, 40, dtype=kiln.bool, device="cuda")
    F.scaled_dot_product_attention(q, k, v, attn_mask=mask).sum().backward()
    F.scaled_dot_product_attention(q.float(), k.float(), v.float()).sum().backward()
    kiln.backends.cuda.enable_cudnn_sdp(False)
    try:
        F.scaled_dot_product_attention(q, k, v).sum().backward()
    finally:
        kiln.backends.cuda.enable_cudnn_sdp(True)
    assert run() == before


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("forward_on", ["cudnn", "kernels"])
def test_sdpa_forward_and_backward_on_different_paths(dtype, forward_on):
    """Either forward's logsumexp serves either backward: the forward on cuDNN and the
    backward on kiln's kernels, and the other way round."""
    if not kiln.backends.cudnn.is_available():
        pytest.skip(f"cuDNN: {kiln.backends.cudnn.is_available(explain=True).reason}")
    b, run = kiln.backends.cuda, kiln.cuda._module._cudnn_attentions_run
    arrays = [randn(2, 3, 37, 64), randn(2, 3, 45, 64, rng=np.random.default_rng(1)),
              randn(2, 3, 45, 32, rng=np.random.default_rng(2))]
    pairs = [pair(a, dtype, True) for a in arrays]
    g = kiln.tensor(randn(2, 3, 37, 32, rng=np.random.default_rng(3))).to(dtype)
    out_h = F.scaled_dot_product_attention(*(p[0] for p in pairs), is_causal=True)
    out_h.backward(g)
    before = run()
    try:
        b.enable_cudnn_sdp(forward_on == "cudnn")
        out_d = F.scaled_dot_product_attention(*(p[1] for p in pairs), is_causal=True)
        b.enable_cudnn_sdp(forward_on != "cudnn")
        out_d.backward(g.cuda())
    finally:
        b.enable_cudnn_sdp(True)
    if os.environ.get("KILN_EXPECT_CUDNN") == "1":
        assert run() - before == 1, kiln.cuda._module._cudnn_attention_declined()
    assert_close(back(out_d), out_h, rtol=tol(dtype), atol=tol(dtype))
    for h, d in pairs:
        assert_close(back(d.grad), h.grad, rtol=tol(dtype), atol=tol(dtype))


def test_cudnn_deterministic_attention_gives_identical_gradients():
    """kiln.backends.cudnn.deterministic: the same query gradient, bit for bit, every run
    (cuDNN's attention backward may otherwise sum dq with atomics)."""
    q, k, v, g = (
        kiln.tensor(randn(4, 8, 256, 64, rng=np.random.default_rng(i))).to(kiln.bfloat16).cuda()
        for i in range(4)
    )

    def query_grad():
        qg = q.detach().requires_grad_(True)
        # The forward on cuDNN at least; its deterministic backward may decline (kiln's
        # kernels, deterministic too, then run it).
        with cudnn_attention_passes(1):
            out = F.scaled_dot_product_attention(qg, k, v)
        out.backward(g)
        return back(qg.grad.float()).numpy()

    assert_deterministic(query_grad, 2e-2)


def test_sdpa_gradcheck_on_cuda():
    # float64: the composed forward, whose backward formula the fused path shares.
    q = kiln.tensor(randn(2, 5, 4)).cuda().requires_grad_(True)
    k = kiln.tensor(randn(2, 6, 4, rng=np.random.default_rng(1))).cuda().requires_grad_(True)
    v = kiln.tensor(randn(2, 6, 3, rng=np.random.default_rng(2))).cuda().requires_grad_(True)
    assert kiln.autograd.gradcheck(
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), [q, k, v]
    )


# ---- the benchmarks' training steps ------------------------------------------------------


def _train_builders():
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    from benchmarks.suites import train

    return train


@pytest.mark.parametrize(
    "model,optimizer,shape",
    [
        ("_mlp", lambda p: kiln.optim.Adam(p, lr=1e-3), (32, 784)),
        ("_cnn", lambda p: kiln.optim.SGD(p, lr=0.01, momentum=0.9), (8, 3, 32, 32)),
        ("_transformer", lambda p: kiln.optim.AdamW(p, lr=1e-3), (4, 32, 256)),
    ],
)
def test_training_steps_match_cpu(model, optimizer, shape):
    build = getattr(_train_builders(), model)
    rng = np.random.default_rng(0)
    x = kiln.tensor(rng.standard_normal(shape, dtype=np.float32))
    y = kiln.tensor(rng.integers(0, 10, shape[0]).astype(np.int64))
    runs = []
    for device in ("cpu", "cuda"):
        kiln.manual_seed(0)
        net = build(kiln).to(device)
        opt = optimizer(net.parameters())
        loss_fn = kiln.nn.CrossEntropyLoss()
        losses = []
        for _ in range(3):
            loss = loss_fn(net(x.to(device)), y.to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        runs.append((losses, {k: v.cpu() for k, v in net.state_dict().items()}))
    (cpu_losses, cpu_state), (gpu_losses, gpu_state) = runs
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-4, atol=1e-4)
    # Adam-type updates are ~lr whatever the gradient's size: small gradients that differ
    # by rounding may move a weight by up to lr per step differently.
    for key, value in cpu_state.items():
        assert_close(gpu_state[key], value, rtol=1e-3, atol=3e-3)
