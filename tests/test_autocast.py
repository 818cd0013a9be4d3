"""kiln.autocast against torch.autocast on CPU: the output dtype of every op in
kiln's cast lists (and of unlisted ops, which must not change) equals torch's,
values agree, gradients reach float32 leaves as float32, and the context
manager's state handling (nesting, enabled=False, decorator, cache) matches."""


import kiln
import numpy as np
import pytest
from compare import dtype_name, require_torch

torch = require_torch()

LOW = ["bfloat16", "float16"]
TOL = {"bfloat16": 4e-2, "float16": 6e-3, "float32": 2e-3, "float64": 1e-6}


def make(lib, spec, rng, low):
    """One input from a spec: (shape, kind); kind f=float32, l=the low dtype,
    d=float64, p=float32 in (0.05, 0.95), s=float32 sign, c<n>=int64 classes < n."""
    shape, kind = spec
    if kind.startswith("c"):
        return lib.tensor(rng.integers(0, int(kind[1:]), shape).astype(np.int64))
    if kind == "p":
        arr = rng.uniform(0.05, 0.95, shape)
    elif kind == "s":
        arr = np.sign(rng.standard_normal(shape)) + (rng.standard_normal(shape) == 0)
    else:
        arr = rng.standard_normal(shape) * 0.5
    dtype = {"f": "float32", "p": "float32", "s": "float32", "d": "float64", "l": low}[kind]
    return lib.tensor(arr.astype(np.float32)).to(getattr(lib, dtype))


def to_np(t):
    return t.detach().to(kiln.float64 if isinstance(t, kiln.Tensor) else torch.float64).cpu().numpy()


def run(lib, fn, specs, low, device="cpu", seed=0):
    rng = np.random.default_rng(seed)
    xs = [make(lib, s, rng, low).to(device) for s in specs]
    with lib.autocast(device, dtype=getattr(lib, low)):
        out = fn(lib, lib.nn.functional, *xs)
    return out if isinstance(out, tuple) else (out,)


def mat(*shape, kind="f"):
    return (shape, kind)


# name -> (fn(lib, F, *inputs), input specs). Inputs are float32 unless the spec
# says otherwise, so lower-precision ops show their cast; fp32 ops get low inputs.
CASES = {
    # lower precision on CPU
    "matmul": (lambda L, F, a, b: L.matmul(a, b), [mat(2, 3, 4), mat(4, 5)]),
    "mm": (lambda L, F, a, b: L.mm(a, b), [mat(3, 4), mat(4, 5)]),
    "bmm": (lambda L, F, a, b: L.bmm(a, b), [mat(2, 3, 4), mat(2, 4, 5)]),
    "addmm": (lambda L, F, c, a, b: L.addmm(c, a, b), [mat(5), mat(3, 4), mat(4, 5)]),
    "baddbmm": (lambda L, F, c, a, b: L.baddbmm(c, a, b), [mat(3, 5), mat(2, 3, 4), mat(2, 4, 5)]),
    "linear": (lambda L, F, x, w, b: F.linear(x, w, b), [mat(3, 4), mat(5, 4), mat(5)]),
    "linear_low_input": (lambda L, F, x, w: F.linear(x, w), [mat(3, 4, kind="l"), mat(5, 4)]),
    "linear_float64": (
        lambda L, F, x, w: F.linear(x, w),
        [mat(3, 4, kind="d"), mat(5, 4, kind="d")],
    ),
    "conv1d": (
        lambda L, F, x, w, b: F.conv1d(x, w, b, padding=1),
        [mat(2, 3, 7), mat(4, 3, 3), mat(4)],
    ),
    "conv2d": (lambda L, F, x, w: F.conv2d(x, w, stride=2), [mat(2, 3, 6, 6), mat(4, 3, 3, 3)]),
    "conv2d_same": (
        lambda L, F, x, w: F.conv2d(x, w, padding="same"),
        [mat(1, 2, 5, 5), mat(3, 2, 3, 3)],
    ),
    "conv_transpose1d": (lambda L, F, x, w: F.conv_transpose1d(x, w), [mat(2, 3, 5), mat(3, 4, 3)]),
    "conv_transpose2d": (
        lambda L, F, x, w: F.conv_transpose2d(x, w, stride=2),
        [mat(1, 3, 4, 4), mat(3, 2, 3, 3)],
    ),
    "prelu": (lambda L, F, x, w: F.prelu(x, w), [mat(2, 3, 4), mat(3)]),
    "sdpa": (
        lambda L, F, q, k, v: F.scaled_dot_product_attention(q, k, v),
        [mat(2, 3, 4), mat(2, 5, 4), mat(2, 5, 4)],
    ),
    "sdpa_causal": (
        lambda L, F, q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        [mat(1, 4, 8), mat(1, 4, 8), mat(1, 4, 8)],
    ),
    "einsum": (lambda L, F, a, b: L.einsum("bij,bjk->bik", a, b), [mat(2, 3, 4), mat(2, 4, 5)]),
    # float32 on CPU
    "prod": (lambda L, F, x: L.prod(x), [mat(6, kind="l")]),
    "prod_dim": (lambda L, F, x: L.prod(x, 1), [mat(3, 4, kind="l")]),
    "mse_loss": (lambda L, F, a, b: F.mse_loss(a, b), [mat(3, 4, kind="l"), mat(3, 4, kind="l")]),
    "l1_loss": (
        lambda L, F, a, b: F.l1_loss(a, b, reduction="none"),
        [mat(3, 4, kind="l"), mat(3, 4)],
    ),
    "smooth_l1_loss": (
        lambda L, F, a, b: F.smooth_l1_loss(a, b),
        [mat(3, 4, kind="l"), mat(3, 4, kind="l")],
    ),
    "huber_loss": (
        lambda L, F, a, b: F.huber_loss(a, b),
        [mat(3, 4, kind="l"), mat(3, 4, kind="l")],
    ),
    "kl_div": (
        lambda L, F, a, b: F.kl_div(a, b, reduction="batchmean"),
        [mat(3, 4, kind="l"), mat(3, 4, kind="p")],
    ),
    "bce": (
        lambda L, F, a, b: F.binary_cross_entropy(a, b),
        [mat(3, 4, kind="p"), mat(3, 4, kind="p")],
    ),
    "bce_with_logits": (
        lambda L, F, a, b: F.binary_cross_entropy_with_logits(a, b),
        [mat(3, 4, kind="l"), mat(3, 4, kind="p")],
    ),
    "margin_ranking_loss": (
        lambda L, F, a, b, y: F.margin_ranking_loss(a, b, y),
        [mat(5, kind="l"), mat(5, kind="l"), mat(5, kind="s")],
    ),
    "triplet_margin_loss": (
        lambda L, F, a, p, n: F.triplet_margin_loss(a, p, n),
        [mat(3, 4, kind="l"), mat(3, 4, kind="l"), mat(3, 4, kind="l")],
    ),
    "cosine_embedding_loss": (
        lambda L, F, a, b, y: F.cosine_embedding_loss(a, b, y),
        [mat(3, 4, kind="l"), mat(3, 4, kind="l"), mat(3, kind="s")],
    ),
    "nll_loss": (lambda L, F, x, t: F.nll_loss(x, t), [mat(3, 5, kind="l"), mat(3, kind="c5")]),
    "cross_entropy": (
        lambda L, F, x, t: F.cross_entropy(x, t),
        [mat(3, 5, kind="l"), mat(3, kind="c5")],
    ),
    "pad_reflect": (lambda L, F, x: F.pad(x, (1, 2), mode="reflect"), [mat(2, 3, 5, kind="l")]),
    "pad_replicate": (
        lambda L, F, x: F.pad(x, (1, 1, 2, 0), mode="replicate"),
        [mat(1, 2, 3, 4, kind="l")],
    ),
    # promote on CPU
    "cat": (lambda L, F, a, b: L.cat([a, b], 0), [mat(2, 3, kind="l"), mat(1, 3)]),
    "cat_low": (lambda L, F, a, b: L.cat([a, b], 1), [mat(2, 3, kind="l"), mat(2, 1, kind="l")]),
    "stack": (lambda L, F, a, b: L.stack([a, b]), [mat(2, 3), mat(2, 3, kind="l")]),
    "stack_float64": (
        lambda L, F, a, b: L.stack([a, b]),
        [mat(2, 3, kind="d"), mat(2, 3, kind="l")],
    ),
    # not in CPU's lists: run in their inputs' dtypes
    "exp_low": (lambda L, F, x: L.exp(x), [mat(3, 4, kind="l")]),
    "softmax_low": (lambda L, F, x: L.softmax(x, 1), [mat(3, 4, kind="l")]),
    "log_softmax_low": (lambda L, F, x: F.log_softmax(x, dim=-1), [mat(3, 4, kind="l")]),
    "sum_low": (lambda L, F, x: L.sum(x), [mat(3, 4, kind="l")]),
    "cumsum_low": (lambda L, F, x: L.cumsum(x, 0), [mat(3, 4, kind="l")]),
    "pow_low": (lambda L, F, x: x**2, [mat(3, 4, kind="l")]),
    "add_mixed": (lambda L, F, a, b: a + b, [mat(3, 4, kind="l"), mat(3, 4)]),
    "addcmul_mixed": (
        lambda L, F, a, b, c: L.addcmul(a, b, c),
        [mat(3, 4), mat(3, 4, kind="l"), mat(3, 4, kind="l")],
    ),
    "dot": (lambda L, F, a, b: L.dot(a, b), [mat(5), mat(5)]),
    "layer_norm_low": (
        lambda L, F, x, w, b: F.layer_norm(x, (4,), w, b),
        [mat(3, 4, kind="l"), mat(4, kind="l"), mat(4, kind="l")],
    ),
    "gelu_low": (lambda L, F, x: F.gelu(x), [mat(3, 4, kind="l")]),
    "relu_after_linear": (lambda L, F, x, w: F.relu(F.linear(x, w)), [mat(3, 4), mat(5, 4)]),
    "mean_after_mm": (lambda L, F, a, b: L.mm(a, b).mean(), [mat(3, 4), mat(4, 5)]),
    "outer": (lambda L, F, a, b: L.outer(a, b), [mat(3), mat(4)]),
    # in CUDA's lists only (on CPU they run in their inputs' dtypes)
    "logsumexp_low": (lambda L, F, x: L.logsumexp(x, 1), [mat(3, 4, kind="l")]),
    "softplus_low": (lambda L, F, x: F.softplus(x), [mat(3, 4, kind="l")]),
    "rsqrt_low": (lambda L, F, x: L.rsqrt(x.abs() + 1), [mat(3, 4, kind="l")]),
    "group_norm_low": (lambda L, F, x: F.group_norm(x, 2), [mat(2, 4, 3, kind="l")]),
    "rms_norm_low": (lambda L, F, x: F.rms_norm(x, (4,), eps=1e-5), [mat(3, 4, kind="l")]),
    "norm_low": (lambda L, F, x: L.norm(x), [mat(3, 4, kind="l")]),
    "prod_float32": (lambda L, F, x: L.prod(x, 0), [mat(3, 2)]),
    "cosine_similarity_low": (
        lambda L, F, a, b: F.cosine_similarity(a, b),
        [mat(3, 4, kind="l"), mat(3, 4, kind="l")],
    ),
    "interpolate_low": (
        lambda L, F, x: F.interpolate(x, scale_factor=2, mode="bilinear"),
        [mat(1, 2, 3, 3, kind="l")],
    ),
    "bilinear_mixed": (
        lambda L, F, a, b, w: F.bilinear(a, b, w),
        [mat(3, 2, kind="l"), mat(3, 4), mat(5, 2, 4)],
    ),
    "atan2_mixed": (lambda L, F, a, b: L.atan2(a, b), [mat(3, 4, kind="l"), mat(3, 4)]),
    "addcdiv_mixed": (
        lambda L, F, a, b, c: L.addcdiv(a, b, c.abs() + 1),
        [mat(3, 4, kind="l"), mat(3, 4), mat(3, 4, kind="l")],
    ),
    "scatter_add_mixed": (
        lambda L, F, x, s: L.scatter_add(x, 0, L.zeros(2, 3, dtype=L.int64, device=x.device), s),
        [mat(3, 3, kind="l"), mat(2, 3)],
    ),
    "dot_mixed": (lambda L, F, a, b: L.dot(a, b.to(a.dtype)), [mat(5, kind="l"), mat(5)]),
    "elu_low": (lambda L, F, x: F.elu(x), [mat(3, 4, kind="l")]),
    "selu_low": (lambda L, F, x: F.selu(x), [mat(3, 4, kind="l")]),
    "mish_low": (lambda L, F, x: F.mish(x), [mat(3, 4, kind="l")]),
    "logsigmoid_low": (lambda L, F, x: F.logsigmoid(x), [mat(3, 4, kind="l")]),
    "softmax_dtype": (lambda L, F, x: F.softmax(x, -1, dtype=x.dtype), [mat(3, 4, kind="l")]),
    "normalize_low": (lambda L, F, x: F.normalize(x), [mat(3, 4, kind="l")]),
}
# PyTorch refuses binary_cross_entropy under CUDA autocast (checked separately).
CUDA_BANNED = {"bce"}
# Mixed-dtype inputs only CUDA's promote policy accepts (kiln's kernels want one dtype).
CUDA_ONLY = {"bilinear_mixed", "scatter_add_mixed"}


@pytest.mark.parametrize("low", LOW)
@pytest.mark.parametrize("name", sorted(CASES))
def test_op_matches_torch_under_cpu_autocast(name, low):
    if name in CUDA_ONLY:
        pytest.skip("mixed dtypes that only CUDA's promote policy accepts")
    check_case(name, low, "cpu")


def check_case(name, low, device):
    fn, specs = CASES[name]
    kout, tout = run(kiln, fn, specs, low, device), run(torch, fn, specs, low, device)
    assert len(kout) == len(tout)
    for k, t in zip(kout, tout):
        assert dtype_name(k.dtype) == dtype_name(t.dtype), name
        assert tuple(k.shape) == tuple(t.shape)
        tol = TOL[dtype_name(t.dtype)] if low == "float16" else TOL["bfloat16"]
        np.testing.assert_allclose(to_np(k), to_np(t), rtol=tol, atol=tol)


def test_ops_outside_autocast_keep_float32():
    # The same ops with autocast off: every float32 result stays float32.
    for name, (fn, specs) in CASES.items():
        if name in CUDA_ONLY:
            continue
        rng = np.random.default_rng(0)
        xs = [make(kiln, s, rng, "float32") for s in specs]
        for out in (
            o if isinstance(o, tuple) else (o,) for o in [fn(kiln, kiln.nn.functional, *xs)]
        ):
            for t in out:
                assert t.dtype in (kiln.float32, kiln.float64), name


def test_binary_cross_entropy_is_banned_on_cuda_only():
    # On CPU it runs in float32 (above); the CUDA ban is tested in test_autocast_cuda.
    x = kiln.rand(3)
    with kiln.autocast("cpu"):
        assert kiln.nn.functional.binary_cross_entropy(x, x).dtype == kiln.float32


@pytest.mark.parametrize("low", LOW)
def test_gradients_reach_float32_leaves_as_float32(low):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    w = rng.standard_normal((5, 6)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    grads = {}
    for lib in (kiln, torch):
        params = [lib.tensor(a.copy()).requires_grad_(True) for a in (x, w, b)]
        with lib.autocast("cpu", dtype=getattr(lib, low)):
            h = lib.nn.functional.linear(*params)
            loss = lib.nn.functional.mse_loss(lib.tanh(h), lib.zeros(4, 5))
            assert dtype_name(h.dtype) == low and loss.dtype == lib.float32
            loss.backward()  # inside the region: backward must not re-cast
        grads[lib.__name__] = [p.grad for p in params]
    for kg, tg in zip(grads["kiln"], grads["torch"]):
        assert kg.dtype == kiln.float32 and tg.dtype == torch.float32
        np.testing.assert_allclose(to_np(kg), to_np(tg), rtol=5e-2, atol=5e-2)


def test_backward_runs_in_forward_dtypes():
    # Backward outside the region gives the same gradients as inside it.
    w = kiln.randn(4, 4, requires_grad=True)
    x = kiln.randn(3, 4)
    with kiln.autocast("cpu"):
        y = kiln.mm(x, w)
        y.float().sum().backward()
    g_inside = w.grad.clone()
    w.grad = None
    with kiln.autocast("cpu"):
        y = kiln.mm(x, w)
    y.float().sum().backward()
    np.testing.assert_array_equal(g_inside.numpy(), w.grad.numpy())


def test_nesting_disable_and_restore():
    a, b = kiln.randn(2, 2), kiln.randn(2, 2)
    assert not kiln.is_autocast_enabled("cpu")
    with kiln.autocast("cpu"):
        assert kiln.is_autocast_enabled("cpu")
        assert kiln.mm(a, b).dtype == kiln.bfloat16
        with kiln.autocast("cpu", enabled=False):
            assert not kiln.is_autocast_enabled("cpu")
            assert kiln.mm(a, b).dtype == kiln.float32
            with kiln.autocast("cpu", dtype=kiln.float16):
                assert kiln.mm(a, b).dtype == kiln.float16
                assert kiln.get_autocast_dtype("cpu") == kiln.float16
            assert kiln.get_autocast_dtype("cpu") == kiln.bfloat16
        assert kiln.mm(a, b).dtype == kiln.bfloat16
    assert not kiln.is_autocast_enabled("cpu")
    assert kiln.mm(a, b).dtype == kiln.float32


def test_state_restored_after_exception():
    with pytest.raises(ValueError), kiln.autocast("cpu"):
        raise ValueError("boom")
    assert not kiln.is_autocast_enabled("cpu")
    assert kiln.mm(kiln.randn(2, 2), kiln.randn(2, 2)).dtype == kiln.float32


def test_decorator_and_defaults():
    @kiln.autocast("cpu")
    def f(a, b):
        assert kiln.is_autocast_enabled("cpu")
        return kiln.mm(a, b)

    assert f(kiln.randn(2, 2), kiln.randn(2, 2)).dtype == kiln.bfloat16
    assert not kiln.is_autocast_enabled("cpu")
    assert kiln.get_autocast_dtype("cpu") == kiln.bfloat16
    assert kiln.get_autocast_dtype("cuda") == kiln.float16
    assert kiln.amp.autocast is kiln.autocast
    assert kiln.amp.is_autocast_available("cpu") and not kiln.amp.is_autocast_available("xla")
    with pytest.raises(TypeError, match="requires a callable"):
        kiln.autocast("cpu")(3)


def test_only_the_region_device_type_is_affected():
    a, b = kiln.randn(2, 2), kiln.randn(2, 2)
    kiln.set_autocast_enabled("cuda", True)  # no CUDA tensors here: CPU ops must not cast
    try:
        assert kiln.is_autocast_enabled("cuda") and kiln.is_autocast_enabled()
        assert kiln.mm(a, b).dtype == kiln.float32
        assert kiln.nn.functional.prelu(a, kiln.ones(1)).dtype == kiln.float32
    finally:
        kiln.set_autocast_enabled("cuda", False)


def test_bad_arguments():
    with pytest.raises(ValueError, match="device_type"):
        kiln.autocast(kiln.device("cpu"))
    with pytest.raises(RuntimeError, match="unsupported autocast device_type 'tpu'"):
        kiln.autocast("tpu")
    with pytest.warns(UserWarning, match="target dtype is not supported"):
        ctx = kiln.autocast("cpu", dtype=kiln.float32)
    with ctx:
        assert not kiln.is_autocast_enabled("cpu")
    with pytest.warns(UserWarning, match="CUDA is not available"):
        ctx = kiln.autocast("cuda")
    with ctx:
        assert not kiln.is_autocast_enabled("cuda")
    with pytest.raises(ValueError, match="unsupported device type"):
        kiln.is_autocast_enabled("tpu")


def test_weight_cast_cache():
    w = kiln.randn(4, 4, requires_grad=True)
    x = kiln.randn(4, 4)
    with kiln.autocast("cpu"):
        c1 = kiln._C._autocast_cast(w, kiln.bfloat16)
        c2 = kiln._C._autocast_cast(w, kiln.bfloat16)
        assert c1.data_ptr() == c2.data_ptr()  # one cast per region
        assert c1.grad_fn is not None
        # Not cached: non-leaves, tensors that don't require grad, float32 casts.
        assert (
            kiln._C._autocast_cast(x, kiln.bfloat16).data_ptr()
            != kiln._C._autocast_cast(x, kiln.bfloat16).data_ptr()
        )
        with kiln.autocast("cpu"):  # nested regions share the cache
            assert kiln._C._autocast_cast(w, kiln.bfloat16).data_ptr() == c1.data_ptr()
        assert kiln._C._autocast_cast(w, kiln.bfloat16).data_ptr() == c1.data_ptr()
        # Two uses of the cached weight both reach w.grad.
        y = kiln.mm(x, w) + kiln.mm(x, w)
        y.float().sum().backward()
    np.testing.assert_allclose(
        w.grad.numpy(),
        2 * np.repeat(x.to(kiln.bfloat16).float().numpy().sum(0)[:, None], 4, 1),
        rtol=1e-2,
    )
    with kiln.autocast("cpu"):  # the outermost exit cleared it
        assert kiln._C._autocast_cast(w, kiln.bfloat16).data_ptr() != c1.data_ptr()
    with kiln.autocast("cpu", cache_enabled=False):
        assert not kiln.is_autocast_cache_enabled()
        assert (
            kiln._C._autocast_cast(w, kiln.bfloat16).data_ptr()
            != kiln._C._autocast_cast(w, kiln.bfloat16).data_ptr()
        )
    assert kiln.is_autocast_cache_enabled()


def test_promote_rejects_mixed_half_types():
    a = kiln.randn(2, 2).to(kiln.float16)
    b = kiln.randn(2, 2).to(kiln.bfloat16)
    with kiln.autocast("cpu"), pytest.raises(TypeError, match=r"\[autocast\] cannot promote"):
        kiln.cat([a, b])


class _Scale(kiln.autograd.Function):
    @staticmethod
    @kiln.amp.custom_fwd(device_type="cpu", cast_inputs=kiln.float32)
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        assert not kiln.is_autocast_enabled("cpu")
        return kiln.mm(x, w)

    @staticmethod
    @kiln.amp.custom_bwd(device_type="cpu")
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return kiln.mm(g, w.t()), kiln.mm(x.t(), g)


class _Plain(kiln.autograd.Function):
    @staticmethod
    @kiln.amp.custom_fwd(device_type="cpu")
    def forward(ctx, x, w):
        return kiln.mm(x, w)

    @staticmethod
    @kiln.amp.custom_bwd(device_type="cpu")
    def backward(ctx, g):
        assert kiln.is_autocast_enabled("cpu")
        return g, g


def test_custom_fwd_bwd():
    x = kiln.randn(3, 4).to(kiln.bfloat16).requires_grad_(True)
    w = kiln.randn(4, 2, requires_grad=True)
    with kiln.autocast("cpu"):
        y = _Scale.apply(x, w)
        assert y.dtype == kiln.float32
        y.sum().backward()
        assert _Plain.apply(kiln.randn(2, 2), kiln.randn(2, 2)).dtype == kiln.bfloat16
    assert w.grad.dtype == kiln.float32 and x.grad.dtype == kiln.bfloat16
    # Outside autocast custom_fwd is a no-op.
    assert _Scale.apply(kiln.randn(3, 4), w).dtype == kiln.float32
    with pytest.raises(ValueError, match="device_type"):
        kiln.amp.custom_fwd(device_type=None)


@pytest.mark.filterwarnings("ignore:.*CUDA is not available:UserWarning")
def test_cuda_amp_aliases_warn():
    with pytest.warns(FutureWarning, match="kiln.cuda.amp.autocast"):
        kiln.cuda.amp.autocast()
    with pytest.warns(FutureWarning, match="kiln.cuda.amp.GradScaler"):
        kiln.cuda.amp.GradScaler()


# ---- CUDA (skipped without a GPU; the GPU machine has torch with CUDA) ----------------------


@pytest.mark.cuda
@pytest.mark.parametrize("low", LOW)
@pytest.mark.parametrize("name", sorted(set(CASES) - CUDA_BANNED))
def test_op_matches_torch_under_cuda_autocast(name, low):
    if name == "rms_norm_low" and "AutocastCUDA" not in torch._C._dispatch_dump("aten::rms_norm"):
        # kiln follows torch 2.13, which runs rms_norm in float32 under CUDA autocast;
        # older torch (the GPU machine's 2.11) has no policy for it.
        pytest.skip(f"torch {torch.__version__} has no CUDA autocast policy for rms_norm")
    check_case(name, low, "cuda")


@pytest.mark.cuda
def test_cuda_autocast_bans_binary_cross_entropy():
    x = kiln.rand(3, device="cuda")
    with kiln.autocast("cuda"), pytest.raises(RuntimeError, match="unsafe to autocast"):
        kiln.nn.functional.binary_cross_entropy(x, x)


@pytest.mark.cuda
def test_cuda_autocast_leaves_cpu_ops_alone():
    a, b = kiln.randn(2, 2), kiln.randn(2, 2)
    with kiln.autocast("cuda"):
        assert kiln.mm(a, b).dtype == kiln.float32
        assert kiln.mm(a.cuda(), b.cuda()).dtype == kiln.float16
        assert kiln.exp(a.cuda().half()).dtype == kiln.float32
        with kiln.autocast("cpu"):
            assert kiln.mm(a, b).dtype == kiln.bfloat16
            assert kiln.mm(a.cuda(), b.cuda()).dtype == kiln.float16


@pytest.mark.cuda
def test_cuda_gradients_reach_float32_leaves():
    w = kiln.randn(5, 4, device="cuda", requires_grad=True)
    x = kiln.randn(3, 4, device="cuda")
    with kiln.autocast("cuda", dtype=kiln.bfloat16):
        y = kiln.nn.functional.linear(x, w)
        loss = kiln.nn.functional.mse_loss(y, kiln.zeros(3, 5, device="cuda"))
    assert y.dtype == kiln.bfloat16 and loss.dtype == kiln.float32
    loss.backward()
    assert w.grad.dtype == kiln.float32 and w.grad.device.type == "cuda"


def _recurrent_outputs(lib, name, x, low, device, module=None):
    with lib.autocast(device, dtype=getattr(lib, low)):
        out = module(lib.tensor(x).to(device))
    return out if isinstance(out, tuple) else (out,)


@pytest.mark.parametrize("low", LOW)
@pytest.mark.parametrize("name", ["LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell"])
def test_recurrent_layers_match_torch_under_cpu_autocast(name, low, device="cpu"):
    from nn_compare import copy_module

    if name == "LSTM" and low == "float16" and device == "cpu":
        pytest.skip("torch's oneDNN LSTM has no float16 CPU kernel")
    torch.manual_seed(0)
    cell = name.endswith("Cell")
    kw = {} if cell else {"num_layers": 2, "batch_first": True}
    tmod = getattr(torch.nn, name)(4, 6, **kw)
    kmod = getattr(kiln.nn, name)(4, 6, **kw)
    copy_module(kmod, tmod, "float32")
    kmod.to(device)
    tmod.to(device)
    x = np.random.default_rng(0).standard_normal((2, 4) if cell else (2, 5, 4)).astype(np.float32)
    kout = _recurrent_outputs(kiln, name, x, low, device, kmod)
    tout = _recurrent_outputs(torch, name, x, low, device, tmod)
    flat = lambda outs: [t for o in outs for t in (o if isinstance(o, tuple) else (o,))]
    for k, t in zip(flat(kout), flat(tout)):
        assert dtype_name(k.dtype) == dtype_name(t.dtype), name
        np.testing.assert_allclose(to_np(k.cpu()), to_np(t.cpu()), rtol=4e-2, atol=4e-2)


@pytest.mark.cuda
@pytest.mark.parametrize("name", ["LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell"])
def test_recurrent_layers_match_torch_under_cuda_autocast(name):
    test_recurrent_layers_match_torch_under_cpu_autocast(name, "float16", device="cuda")
