"""kiln.nn.functional vs torch.nn.functional: values and gradients, plus gradchecks."""

import kiln
import kiln.nn.functional as F
import numpy as np
import pytest
from compare import assert_close, require_torch
from nn_compare import compare

torch = require_torch()
TF = torch.nn.functional
DTYPES = ["float64", "float32"]


def arr(*shape, seed=0, scale=1.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


def both_fn(name, *args, **kw):
    return (
        lambda *xs: getattr(F, name)(*xs, *args, **kw),
        lambda *xs: getattr(TF, name)(*xs, *args, **kw),
    )


ACTIVATIONS = [
    ("relu", {}),
    ("relu6", {}),
    ("leaky_relu", {"negative_slope": 0.1}),
    ("elu", {}),
    ("elu", {"alpha": 0.5}),
    ("selu", {}),
    ("gelu", {}),
    ("gelu", {"approximate": "tanh"}),
    ("silu", {}),
    ("mish", {}),
    ("tanh", {}),
    ("sigmoid", {}),
    ("hardtanh", {}),
    ("hardtanh", {"min_val": -2.0, "max_val": 0.5}),
    ("hardswish", {}),
    ("hardsigmoid", {}),
    ("softplus", {}),
    ("softplus", {"beta": 2.0, "threshold": 3.0}),
    ("logsigmoid", {}),
    ("softmax", {"dim": 1}),
    ("softmax", {"dim": -1}),
    ("log_softmax", {"dim": 0}),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kw", ACTIVATIONS)
def test_activation(dtype, name, kw):
    compare(*both_fn(name, **kw), [arr(3, 4, 5, scale=4)], dtype)


def test_activation_large_inputs_finite():
    x = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    for name in ["elu", "selu", "mish", "softplus", "logsigmoid", "silu"]:
        compare(*both_fn(name), [x])


def test_softmax_dtype_and_implicit_dim():
    x = arr(3, 4).astype(np.float32)
    assert_close(
        F.softmax(kiln.tensor(x), dim=1, dtype=kiln.float64),
        TF.softmax(torch.tensor(x), dim=1, dtype=torch.float64),
    )
    assert_close(
        F.log_softmax(kiln.tensor(x), 1, dtype=kiln.float64),
        TF.log_softmax(torch.tensor(x), 1, dtype=torch.float64),
    )


@pytest.mark.parametrize("shape", [(3,), (2, 3, 4)])
def test_prelu(shape):
    w = np.array([0.1, -0.3, 0.5])[: shape[1] if len(shape) > 1 else 1]
    compare(F.prelu, TF.prelu, [arr(*shape), w])


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_bilinear(dtype):
    compare(F.linear, TF.linear, [arr(4, 3), arr(5, 3), arr(5)], dtype)
    compare(F.linear, TF.linear, [arr(2, 4, 3), arr(5, 3)], dtype)
    compare(F.bilinear, TF.bilinear, [arr(4, 3), arr(4, 2), arr(5, 3, 2), arr(5)], dtype)


def test_conv_reexports():
    compare(
        lambda x, w: F.conv2d(x, w, padding=1),
        lambda x, w: TF.conv2d(x, w, padding=1),
        [arr(1, 2, 5, 5), arr(3, 2, 3, 3)],
    )
    compare(
        lambda x, w: F.conv_transpose1d(x, w, stride=2),
        lambda x, w: TF.conv_transpose1d(x, w, stride=2),
        [arr(1, 2, 5), arr(2, 3, 3)],
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_pool_functions(dtype):
    x = [arr(2, 3, 7, 8)]
    compare(*both_fn("max_pool2d", 3, 2, 1, return_indices=True), x, dtype)
    compare(*both_fn("max_pool2d", 2), x, dtype)
    compare(*both_fn("avg_pool2d", 3, 2, 1), x, dtype)
    compare(*both_fn("adaptive_avg_pool2d", (3, 4)), x, dtype)
    compare(*both_fn("adaptive_max_pool2d", 2, return_indices=True), x, dtype)
    compare(*both_fn("adaptive_max_pool2d", (3, 2)), x, dtype)
    y = [arr(2, 3, 9)]
    compare(*both_fn("max_pool1d", 3, return_indices=True), y, dtype)
    compare(*both_fn("avg_pool1d", 2), y, dtype)
    compare(*both_fn("adaptive_avg_pool1d", 4), y, dtype)


PADS = [
    ((1, 2), "constant", None),
    ((1, 0, 2, 3), "constant", 1.5),
    ((-1, 2), "constant", None),
    ((2, 1), "reflect", None),
    ((1, 2, 2, 1), "reflect", None),
    ((3, 1), "replicate", None),
    ((1, 2, 0, 3), "replicate", None),
    ((2, 1, 1, 1), "circular", None),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p,mode,value", PADS)
def test_pad(dtype, p, mode, value):
    kw = {} if value is None else {"value": value}
    compare(
        lambda x: F.pad(x, p, mode, **kw),
        lambda x: TF.pad(x, p, mode, **kw),
        [arr(2, 3, 4, 5) if len(p) == 4 or mode == "constant" else arr(2, 3, 5)],
        dtype,
    )


def test_pad_errors():
    with pytest.raises(ValueError, match=r"\[pad\]"):
        F.pad(kiln.randn(2, 3), (1, 2, 3))
    with pytest.raises(ValueError, match=r"\[pad\] reflect"):
        F.pad(kiln.randn(1, 2, 3), (3, 0), mode="reflect")


INTERP = [
    {"size": (3, 4), "mode": "area"},
    {"scale_factor": 0.5, "mode": "area"},
    {"size": (7, 5), "mode": "nearest-exact"},
    {"scale_factor": 1.7, "mode": "nearest-exact"},
    {"scale_factor": 2},
    {"size": (5, 9)},
    {"size": (3, 2)},
    {"scale_factor": (1.5, 0.5)},
    {"scale_factor": 2, "mode": "bilinear"},
    {"size": (7, 3), "mode": "bilinear"},
    {"size": (7, 11), "mode": "bilinear", "align_corners": True},
    {"size": (1, 1), "mode": "bilinear", "align_corners": True},
    {"scale_factor": 0.6, "mode": "bilinear", "align_corners": False},
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", INTERP)
def test_interpolate_2d(dtype, kw):
    compare(
        lambda x: F.interpolate(x, **kw),
        lambda x: TF.interpolate(x, **kw),
        [arr(2, 3, 4, 6)],
        dtype,
    )


@pytest.mark.parametrize(
    "kw",
    [
        {"scale_factor": 3},
        {"size": 7, "mode": "linear"},
        {"size": 4, "mode": "linear", "align_corners": True},
    ],
)
def test_interpolate_1d(kw):
    compare(lambda x: F.interpolate(x, **kw), lambda x: TF.interpolate(x, **kw), [arr(2, 3, 5)])


def test_interpolate_errors():
    with pytest.raises(ValueError, match=r"\[interpolate\]"):
        F.interpolate(kiln.randn(1, 1, 4, 4), size=2, scale_factor=2)
    with pytest.raises(ValueError, match=r"\[interpolate\].*bilinear"):
        F.interpolate(kiln.randn(1, 1, 4), size=2, mode="bilinear")


def test_unfold_fold():
    kw = {"kernel_size": (2, 3), "dilation": 1, "padding": 1, "stride": 2}
    compare(lambda x: F.unfold(x, **kw), lambda x: TF.unfold(x, **kw), [arr(2, 3, 5, 6)])
    cols = arr(2, 3 * 6, 9)
    compare(lambda c: F.fold(c, (5, 6), **kw), lambda c: TF.fold(c, (5, 6), **kw), [cols])


@pytest.mark.parametrize("dtype", DTYPES)
def test_normalize_cosine_similarity(dtype):
    x = arr(4, 5)
    x[1] = 0.0
    compare(F.normalize, TF.normalize, [x], dtype)
    compare(lambda a: F.normalize(a, p=1, dim=0), lambda a: TF.normalize(a, p=1, dim=0), [x], dtype)
    compare(F.cosine_similarity, TF.cosine_similarity, [arr(4, 5), arr(4, 5, seed=1)], dtype)
    compare(
        lambda a, b: F.cosine_similarity(a, b, dim=-1),
        lambda a, b: TF.cosine_similarity(a, b, dim=-1),
        [arr(3, 1, 5), arr(2, 5, seed=1)],
        dtype,
    )


def test_one_hot():
    idx = np.array([0, 3, 1])
    assert_close(F.one_hot(kiln.tensor(idx), 5), TF.one_hot(torch.tensor(idx), 5))
    assert_close(F.one_hot(kiln.tensor(idx)), TF.one_hot(torch.tensor(idx)))


def test_pixel_shuffle():
    compare(*both_fn("pixel_shuffle", 2), [arr(2, 12, 3, 4)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", [{}, {"is_causal": True}, {"scale": 0.3}])
def test_sdpa(dtype, kw):
    q, k, v = arr(2, 3, 5, 4), arr(2, 3, 6, 4, seed=1), arr(2, 3, 6, 2, seed=2)
    compare(
        lambda *a: F.scaled_dot_product_attention(*a, **kw),
        lambda *a: TF.scaled_dot_product_attention(*a, **kw),
        [q, k, v],
        dtype,
    )


def test_sdpa_masks():
    q, k, v = arr(2, 5, 4), arr(2, 6, 4, seed=1), arr(2, 6, 3, seed=2)
    bool_mask = np.random.default_rng(3).random((5, 6)) > 0.3
    bool_mask[:, 0] = True
    ks = [kiln.tensor(a) for a in (q, k, v)]
    ts = [torch.tensor(a) for a in (q, k, v)]
    assert_close(
        F.scaled_dot_product_attention(*ks, attn_mask=kiln.tensor(bool_mask)),
        TF.scaled_dot_product_attention(*ts, attn_mask=torch.tensor(bool_mask)),
    )
    float_mask = arr(5, 6, seed=4)
    compare(
        lambda *a: F.scaled_dot_product_attention(*a[:3], attn_mask=a[3]),
        lambda *a: TF.scaled_dot_product_attention(*a[:3], attn_mask=a[3]),
        [q, k, v, float_mask],
    )


def test_sdpa_broadcast_batch_and_mask_gradients():
    # key/value shared by the heads (batch dims broadcast) and a float mask that needs grad.
    shapes = [(2, 3, 4, 5), (2, 1, 6, 5), (1, 1, 6, 3), (3, 1, 6)]
    inputs = [kiln.tensor(arr(*s, seed=i)).requires_grad_(True) for i, s in enumerate(shapes)]
    assert kiln.autograd.gradcheck(
        lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m), inputs
    )
    compare(
        lambda *a: F.scaled_dot_product_attention(*a[:3], attn_mask=a[3]),
        lambda *a: TF.scaled_dot_product_attention(*a[:3], attn_mask=a[3]),
        [arr(*s, seed=i) for i, s in enumerate(shapes)],
    )


def test_sdpa_fully_masked_query_gives_zeros():
    mask = np.ones((3, 5), bool)
    mask[1] = False  # query 1 may attend to no key
    km, tm = kiln.tensor(mask), torch.tensor(mask)
    compare(
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=km),
        lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, attn_mask=tm),
        [arr(2, 3, 4), arr(2, 5, 4, seed=1), arr(2, 5, 2, seed=2)],
    )


def test_sdpa_double_backward():
    shapes = [(2, 4, 3), (2, 5, 3), (2, 5, 2)]
    inputs = [kiln.tensor(arr(*s, seed=i)).requires_grad_(True) for i, s in enumerate(shapes)]
    assert kiln.autograd.gradgradcheck(
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), inputs
    )


def test_sdpa_bad_input():
    q = kiln.zeros(2, 4, 3)
    with pytest.raises(ValueError, match=r"\[scaled_dot_product_attention\].*key"):
        F.scaled_dot_product_attention(q, kiln.zeros(2, 5, 4), kiln.zeros(2, 5, 2))
    with pytest.raises(ValueError, match=r"\[scaled_dot_product_attention\].*attn_mask"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=kiln.zeros(3, 3))
    with pytest.raises(TypeError, match=r"\[scaled_dot_product_attention\].*dtype"):
        F.scaled_dot_product_attention(q, q.double(), q)


def test_sdpa_dropout_statistics():
    kiln.manual_seed(0)
    q = kiln.zeros(1, 200, 8)
    v = kiln.ones(1, 200, 1)
    out = F.scaled_dot_product_attention(q, q, v, dropout_p=0.5)
    # Uniform attention: each output is the kept fraction, rescaled by 1/(1-p), so mean ~ 1.
    assert abs(out.mean().item() - 1.0) < 0.1
    assert out.std().item() > 0


@pytest.mark.parametrize(
    "fn,shapes",
    [
        (lambda x: F.elu(x), [(3, 4)]),
        (lambda x: F.mish(x), [(3, 4)]),
        (lambda x: F.leaky_relu(x, 0.2), [(3, 4)]),
        (lambda x: F.pad(x, (1, 2, 2, 1), mode="reflect"), [(1, 2, 3, 4)]),
        (lambda x: F.pad(x, (2, 1), mode="replicate"), [(2, 3)]),
        (lambda x: F.interpolate(x, size=(5, 3), mode="bilinear"), [(1, 2, 3, 4)]),
        (lambda x: F.normalize(x), [(3, 4)]),
        (lambda a, b: F.cosine_similarity(a, b), [(3, 4), (3, 4)]),
        (
            lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=True),
            [(2, 3, 4), (2, 3, 4), (2, 3, 2)],
        ),
        (lambda a, b, w: F.bilinear(a, b, w), [(2, 3), (2, 2), (4, 3, 2)]),
        (lambda x: F.pixel_shuffle(x, 2), [(1, 4, 2, 3)]),
    ],
)
def test_gradcheck(fn, shapes):
    inputs = [kiln.tensor(arr(*s, seed=i)).requires_grad_(True) for i, s in enumerate(shapes)]
    assert kiln.autograd.gradcheck(fn, inputs)


@pytest.mark.parametrize(
    "name", ["elu", "selu", "leaky_relu", "hardswish", "hardsigmoid", "hardtanh", "relu6", "mish"]
)
def test_inplace_activation_autograd(name):
    # In-place on a non-leaf that requires grad: same values and input gradient as torch.
    compare(
        lambda x: getattr(F, name)(x * 1.0, inplace=True),
        lambda x: getattr(TF, name)(x * 1.0, inplace=True),
        [arr(3, 4, scale=3)],
    )


def test_noncontiguous_inputs():
    x = arr(4, 3, 6, 5)
    compare(
        lambda a: F.pad(a.transpose(2, 3), (1, 2, 2, 1), mode="reflect"),
        lambda a: TF.pad(a.transpose(2, 3), (1, 2, 2, 1), mode="reflect"),
        [x],
    )
    compare(
        lambda a: F.interpolate(a[:, :, ::2], scale_factor=2, mode="bilinear"),
        lambda a: TF.interpolate(a[:, :, ::2], scale_factor=2, mode="bilinear"),
        [x],
    )
    compare(
        lambda a: F.pixel_shuffle(a.transpose(0, 1), 1),
        lambda a: TF.pixel_shuffle(a.transpose(0, 1), 1),
        [x],
    )
    compare(lambda a: F.gelu(a.transpose(0, 3)), lambda a: TF.gelu(a.transpose(0, 3)), [x])


def test_sdpa_gqa():
    q, k, v = arr(2, 4, 5, 3), arr(2, 2, 6, 3, seed=1), arr(2, 2, 6, 2, seed=2)
    compare(
        lambda *a: F.scaled_dot_product_attention(*a, enable_gqa=True),
        lambda *a: TF.scaled_dot_product_attention(*a, enable_gqa=True),
        [q, k, v],
    )
