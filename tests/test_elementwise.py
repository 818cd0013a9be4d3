"""Elementwise unary and binary ops: values, dtypes, layouts, special values and gradients
against PyTorch."""

import math
import operator

import kiln
import numpy as np
import pytest
from compare import assert_close, both, dtype_name, require_torch
from elementwise_cases import (
    BINARY,
    BROADCAST_SHAPES,
    FLOAT_BINARY,
    FLOAT_DTYPES,
    binary_inputs,
    domain,
    gradgrad,
    rng,
)
from kiln.autograd import gradcheck

torch = require_torch()
F = torch.nn.functional


# ---- unary ops ------------------------------------------------------------------------

# name -> (kiln fn, torch fn, domain, int behaviour, in-place method or None, differentiable)
# int behaviour: "float" promotes int/bool to float32, "same" keeps the dtype, None rejects.
UNARY = {
    "neg": (kiln.neg, torch.neg, None, "same", "neg_", True),
    "abs": (kiln.abs, torch.abs, "nonzero", "same", "abs_", True),
    "sign": (kiln.sign, torch.sign, None, "same", "sign_", True),
    "square": (kiln.square, torch.square, None, "same", "square_", True),
    "exp": (kiln.exp, torch.exp, None, "float", "exp_", True),
    "exp2": (kiln.exp2, torch.exp2, None, "float", "exp2_", True),
    "log": (kiln.log, torch.log, "pos", "float", "log_", True),
    "log2": (kiln.log2, torch.log2, "pos", "float", "log2_", True),
    "log10": (kiln.log10, torch.log10, "pos", "float", "log10_", True),
    "log1p": (kiln.log1p, torch.log1p, "gt-1", "float", "log1p_", True),
    "expm1": (kiln.expm1, torch.expm1, None, "float", "expm1_", True),
    "sqrt": (kiln.sqrt, torch.sqrt, "pos", "float", "sqrt_", True),
    "rsqrt": (kiln.rsqrt, torch.rsqrt, "pos", "float", "rsqrt_", True),
    "reciprocal": (kiln.reciprocal, torch.reciprocal, "nonzero", "float", "reciprocal_", True),
    "sin": (kiln.sin, torch.sin, None, "float", "sin_", True),
    "cos": (kiln.cos, torch.cos, None, "float", "cos_", True),
    "tan": (kiln.tan, torch.tan, "small", "float", "tan_", True),
    "asin": (kiln.asin, torch.asin, "unit", "float", "asin_", True),
    "acos": (kiln.acos, torch.acos, "unit", "float", "acos_", True),
    "atan": (kiln.atan, torch.atan, None, "float", "atan_", True),
    "sinh": (kiln.sinh, torch.sinh, None, "float", "sinh_", True),
    "cosh": (kiln.cosh, torch.cosh, None, "float", "cosh_", True),
    "tanh": (kiln.tanh, torch.tanh, None, "float", "tanh_", True),
    "sigmoid": (kiln.sigmoid, torch.sigmoid, None, "float", "sigmoid_", True),
    "relu": (kiln.relu, torch.relu, "nonzero", "same", "relu_", True),
    "gelu": (kiln.gelu, F.gelu, None, "float", None, True),
    "gelu_tanh": (lambda x: kiln.gelu(x, approximate="tanh"),
                  lambda x: F.gelu(x, approximate="tanh"), None, "float", None, True),
    "silu": (kiln.silu, F.silu, None, "float", None, True),
    "softplus": (kiln.softplus, F.softplus, None, "float", None, True),
    "softplus_beta": (lambda x: kiln.softplus(x, beta=2.0, threshold=1.5),
                      lambda x: F.softplus(x, beta=2.0, threshold=1.5), "nonint", "float", None,
                      True),
    "erf": (kiln.erf, torch.erf, None, "float", "erf_", True),
    "erfc": (kiln.erfc, torch.erfc, None, "float", "erfc_", True),
    "floor": (kiln.floor, torch.floor, "nonint", "same", "floor_", True),
    "ceil": (kiln.ceil, torch.ceil, "nonint", "same", "ceil_", True),
    "round": (kiln.round, torch.round, "nonint", "same", "round_", True),
    "round_decimals": (lambda x: kiln.round(x, decimals=2), lambda x: torch.round(x, decimals=2),
                       None, None, None, False),
    "trunc": (kiln.trunc, torch.trunc, "nonint", "same", "trunc_", True),
    "frac": (kiln.frac, torch.frac, "nonint", None, "frac_", True),
    "isnan": (kiln.isnan, torch.isnan, None, "same", None, False),
    "isinf": (kiln.isinf, torch.isinf, None, "same", None, False),
    "isfinite": (kiln.isfinite, torch.isfinite, None, "same", None, False),
    "isposinf": (kiln.isposinf, torch.isposinf, None, "same", None, False),
    "isneginf": (kiln.isneginf, torch.isneginf, None, "same", None, False),
    "logical_not": (kiln.logical_not, torch.logical_not, None, "same", "logical_not_", False),
}
DIFFERENTIABLE = [n for n, spec in UNARY.items() if spec[5]]


def _unary_input(name, shape, dtype=np.float64, seed=0):
    return domain(UNARY[name][2], shape, rng(seed), dtype)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_name)
@pytest.mark.parametrize("name", list(UNARY))
def test_unary_values(name, dtype):
    kf, tf = UNARY[name][:2]
    k, t = both(_unary_input(name, (3, 5)), dtype=dtype)
    assert_close(kf(k), tf(t))


@pytest.mark.parametrize("dtype", ["int64", "int32", "uint8", "bool"])
@pytest.mark.parametrize("name", list(UNARY))
def test_unary_integral_inputs(name, dtype):
    """Float ops promote to float32; integer-preserving ops keep the dtype; errors match torch."""
    kf, tf = UNARY[name][:2]
    data = np.array([[0, 1, 2], [3, 5, 7]]) if dtype in ("uint8", "bool") else \
        np.array([[-3, -1, 0], [1, 2, 7]])
    k, t = both(data.astype(dtype))
    try:
        expected = tf(t)
    except (RuntimeError, TypeError, NotImplementedError):
        with pytest.raises((RuntimeError, TypeError, NotImplementedError)):
            kf(k)
        return
    got = kf(k)
    assert_close(got, expected, rtol=1e-6, atol=1e-6)


def _views(shape=(4, 6), seed=1, name=None):
    """Non-contiguous kiln/torch views of the same data: transposed, step-sliced, expanded."""
    data = _unary_input(name, shape, seed=seed) if name else domain(None, shape, rng(seed))
    k, t = both(data)
    yield "transposed", k.transpose(0, 1), t.transpose(0, 1)
    yield "stepped", k._slice(1, 1, None, 2), t[:, 1::2]
    yield "expanded", k._slice(0, 0, 1, 1).expand(3, shape[1]), t[0:1].expand(3, shape[1])


@pytest.mark.parametrize("name", list(UNARY))
def test_unary_noncontiguous(name):
    kf, tf = UNARY[name][:2]
    for label, kv, tv in _views(name=name):
        assert not kv.is_contiguous(), label
        assert_close(kf(kv), tf(tv))


@pytest.mark.parametrize("shape", [(0,), (0, 3), (2, 0, 1), ()])
@pytest.mark.parametrize("name", list(UNARY))
def test_unary_empty_and_scalar(name, shape):
    kf, tf = UNARY[name][:2]
    k, t = both(_unary_input(name, shape))
    assert_close(kf(k), tf(t))


SPECIALS = [math.nan, math.inf, -math.inf, -0.0, 0.0, 1e30, -1e30, 1e-30, -1e-30, 0.5, -0.5,
            1.5, 2.5, -2.5, 88.0, -88.0, 700.0, -700.0, 1e4, 3.0]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_name)
@pytest.mark.parametrize("name", list(UNARY))
def test_unary_special_values(name, dtype):
    kf, tf = UNARY[name][:2]
    k, t = both(np.array(SPECIALS), dtype=dtype)
    got, want = kf(k), tf(t)
    if name.startswith("gelu") and dtype == kiln.float32:
        # torch's vectorized float32 gelu gives nan for +inf; kiln gives the limit, +inf.
        assert got.tolist()[1] == math.inf
        keep = np.array(SPECIALS) != math.inf
        got, want = kiln.tensor(got.numpy()[keep]), want[torch.tensor(keep)]
    assert_close(got, want, rtol=1e-5 if dtype == kiln.float32 else 1e-9, atol=1e-30)
    if got.dtype.is_floating_point:  # signed zeros too (abs(-0.0) is +0.0, neg(0.0) is -0.0, ...)
        g, w = got.numpy(), want.numpy()
        zeros = w == 0
        np.testing.assert_array_equal(np.signbit(g[zeros]), np.signbit(w[zeros]))


@pytest.mark.parametrize("name", ["exp", "log", "tanh", "sigmoid", "silu", "gelu_tanh", "erf"])
def test_unary_float32_fast_path_wide_range(name):
    """float32 transcendentals use kiln's own vectorized math: compare against float64
    torch over a wide range (subnormals, tiny, huge, both signs), contiguous and strided."""
    kf, tf = UNARY[name][:2]
    r = rng(7)
    mags = np.concatenate([10.0 ** r.uniform(-44, 38, 20000), r.uniform(0, 100, 20000)])
    x = np.concatenate([mags, -mags, SPECIALS]).astype(np.float32)
    if name == "log":
        x = np.abs(x)
    if name == "gelu_tanh":  # 1 + tanh(u) cancels even in float64; 2 sigmoid(2u) does not
        def tf(t):
            return t * torch.sigmoid(2 * math.sqrt(2 / math.pi) * (t + 0.044715 * t**3))
    want = tf(torch.tensor(x, dtype=torch.float64)).to(torch.float32)
    finite = np.isfinite(want.numpy()) & (np.abs(x) < 3e38)
    got = kf(kiln.tensor(x))
    # gelu_tanh's inner polynomial is rounded to float32 before exp amplifies its error.
    rtol = 1e-5 if name == "gelu_tanh" else 2e-6
    assert_close(kiln.tensor(got.numpy()[finite]), want[torch.tensor(finite)], rtol=rtol,
                 atol=1e-37)
    assert_close(kf(kiln.tensor(x[::2])), kiln.tensor(got.numpy()[::2]), rtol=2e-6, atol=1e-37)


def test_relu_backward_passes_nan_and_blocks_zero():
    k, t = both(np.array([math.nan, 0.0, -0.0, -1.0, 2.0]), requires_grad=True)
    kiln.relu(k).backward(kiln.ones(5, dtype=k.dtype))
    torch.relu(t).backward(torch.ones(5, dtype=t.dtype))
    assert_close(k.grad, t.grad)


@pytest.mark.parametrize("name", [n for n, s in UNARY.items() if s[4]])
def test_unary_inplace(name):
    _kf, _tf, _, _, method, _ = UNARY[name]
    k, t = both(_unary_input(name, (3, 4)))
    out = getattr(k, method)()
    assert out is k
    assert getattr(t, method)() is t
    assert_close(k, t)
    # A non-contiguous view is updated in place in its base's memory.
    base, tbase = both(_unary_input(name, (4, 3)))
    getattr(base.transpose(0, 1), method)()
    getattr(tbase.transpose(0, 1), method)()
    assert_close(base, tbase)


@pytest.mark.parametrize("name", ["exp", "sin", "sqrt", "reciprocal", "tanh", "sigmoid", "log"])
def test_unary_inplace_on_int_raises(name):
    _, _tf, _, _, method, _ = UNARY[name]
    with pytest.raises(RuntimeError):
        getattr(torch.tensor([1, 2]), method)()
    with pytest.raises(TypeError, match=rf"\[{name}\] result type"):
        getattr(kiln.tensor([1, 2]), method)()


@pytest.mark.parametrize("name", ["exp", "tanh", "sigmoid", "relu", "sin", "sqrt", "abs"])
def test_unary_inplace_autograd(name):
    """In-place on a non-leaf records history: the gradient matches torch's."""
    _, _tf, _, _, method, _ = UNARY[name]
    data = _unary_input(name, (5,))
    k, t = both(data, requires_grad=True)
    ky, ty = k * 1.0, t * 1.0
    assert getattr(ky, method)() is ky
    getattr(ty, method)()
    assert_close(ky, ty)
    (ky * ky).sum().backward()
    (ty * ty).sum().backward()
    assert_close(k.grad, t.grad)


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_unary_grad_matches_torch(name):
    kf, tf = UNARY[name][:2]
    k, t = both(_unary_input(name, (3, 4)), requires_grad=True)
    g = rng(5).standard_normal((3, 4))
    kg, tg = both(g)
    kf(k).backward(kg)
    tf(t).backward(tg)
    assert_close(k.grad, t.grad)


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_unary_gradcheck(name):
    kf = UNARY[name][0]
    x = kiln.tensor(_unary_input(name, (2, 3), seed=3), requires_grad=True)
    assert gradcheck(kf, (x,))

@pytest.mark.parametrize("name", ["exp", "log", "sin", "cos", "tanh", "sigmoid", "sqrt", "rsqrt",
                                  "reciprocal", "gelu", "gelu_tanh", "silu", "softplus", "erf",
                                  "atan", "asin", "log1p", "expm1", "abs", "relu", "square"])
def test_unary_gradgradcheck(name):
    gradgrad(UNARY[name][0], _unary_input(name, (2, 3), seed=4))


def test_unary_subgradients_match_torch():
    """abs and relu at 0 give 0; sign/rounding give 0 everywhere."""
    for kf, tf in [(kiln.abs, torch.abs), (kiln.relu, torch.relu), (kiln.sign, torch.sign),
                   (kiln.floor, torch.floor), (kiln.round, torch.round), (kiln.sqrt, torch.sqrt)]:
        k, t = both(np.array([0.0, -0.0, 1.0, -2.0]), requires_grad=True)
        if kf is kiln.sqrt:
            k, t = both(np.array([0.0, 4.0]), requires_grad=True)
        kf(k).sum().backward()
        tf(t).sum().backward()
        assert_close(k.grad, t.grad)


def test_round_half_to_even_and_decimals():
    k, t = both(np.array([0.5, 1.5, 2.5, -0.5, -1.5, 3.5, 1.2345, -2.675, 1e20]))
    assert_close(kiln.round(k), torch.round(t))
    for d in (1, 2, 3, -1, -2):
        assert_close(kiln.round(k, decimals=d), torch.round(t, decimals=d))
        assert_close(k.round(decimals=d), t.round(decimals=d))
    assert kiln.round(kiln.tensor([-0.4])).numpy()[0] == 0 and \
        np.signbit(kiln.round(kiln.tensor([-0.4])).numpy()[0])


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match=r"\[gelu\] approximate"):
        kiln.gelu(kiln.ones(2), approximate="fast")


def test_float_ops_promote_ints_like_torch():
    assert kiln.tensor([1, 2]).exp().dtype == kiln.float32
    assert kiln.tensor([True, False]).sigmoid().dtype == kiln.float32
    kiln.set_default_dtype(kiln.float64)
    try:
        assert kiln.tensor([1, 2]).sqrt().dtype == kiln.float64
    finally:
        kiln.set_default_dtype(kiln.float32)
    assert kiln.tensor([1, 2], dtype=kiln.int32).abs().dtype == kiln.int32
    assert kiln.square(kiln.tensor([True])).dtype == kiln.int64


def test_half_precision_unary():
    for dt in (kiln.float16, kiln.bfloat16):
        k, t = both(domain("pos", (4, 4), rng(2)), dtype=dt)
        for kf, tf in [(kiln.exp, torch.exp), (kiln.sqrt, torch.sqrt), (kiln.sigmoid, torch.sigmoid),
                       (kiln.gelu, F.gelu), (kiln.log, torch.log)]:
            assert_close(kf(k), tf(t), rtol=2e-2, atol=2e-2)

@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_name)
@pytest.mark.parametrize("name", FLOAT_BINARY)
def test_binary_values_and_broadcasting(name, dtype, shapes):
    kf, tf = BINARY[name][:2]
    a, b = binary_inputs(name, *shapes)
    ka, ta = both(a, dtype=dtype)
    kb, tb = both(b, dtype=dtype)
    assert_close(kf(ka, kb), tf(ta, tb))


INT_DATA = {
    "int64": ([-7, -3, 0, 5, 9, 2**40], [2, -3, 4, -5, 1, 3]),
    "int32": ([-7, -3, 0, 5, 9, 100], [2, -3, 4, -5, 1, 7]),
    "int16": ([-7, -3, 0, 5, 9, 100], [2, -3, 4, -5, 1, 7]),
    "int8": ([-7, -3, 0, 5, 9, 100], [2, -3, 4, -5, 1, 7]),
    "uint8": ([7, 3, 0, 5, 9, 200], [2, 3, 4, 5, 1, 7]),
    "bool": ([True, False, True, False, True, True], [True, True, False, False, True, True]),
}


@pytest.mark.parametrize("dtype", list(INT_DATA))
@pytest.mark.parametrize("name", list(BINARY))
def test_binary_integral_dtypes(name, dtype):
    """Integer and bool inputs: same values, dtypes and errors as torch."""
    kf, tf = BINARY[name][:2]
    a, b = INT_DATA[dtype]
    ka, ta = both(np.array(a, dtype=dtype))
    kb, tb = both(np.array(b, dtype=dtype))
    if name == "pow":
        kb, tb = kb.abs() if dtype != "bool" else kb, tb.abs() if dtype != "bool" else tb
    try:
        expected = tf(ta, tb)
    except (RuntimeError, TypeError, NotImplementedError):
        with pytest.raises((RuntimeError, TypeError)):
            kf(ka, kb)
        return
    assert_close(kf(ka, kb), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", list(BINARY))
def test_binary_mixed_dtypes_promote_like_torch(name):
    kf, tf = BINARY[name][:2]
    for da, db in [("int64", "float32"), ("int32", "float64"), ("bool", "int64"), ("uint8", "int8"),
                   ("float32", "float64"), ("bool", "float32")]:
        ka, ta = both(np.array([3, 1, 2]).astype(da))
        kb, tb = both(np.array([1, 2, 1]).astype(db))
        try:
            expected = tf(ta, tb)
        except (RuntimeError, TypeError, NotImplementedError):
            with pytest.raises((RuntimeError, TypeError)):
                kf(ka, kb)
            continue
        assert_close(kf(ka, kb), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", FLOAT_BINARY)
def test_binary_noncontiguous(name):
    kf, tf = BINARY[name][:2]
    a, b = binary_inputs(name, (4, 6), (6, 4), seed=2)
    ka, ta = both(a)
    kb, tb = both(b)
    kb, tb = kb.transpose(0, 1), tb.transpose(0, 1)  # (4, 6), transposed
    assert_close(kf(ka, kb), tf(ta, tb))
    ks, ts = ka._slice(1, 0, None, 2), ta[:, ::2]  # (4, 3), stepped
    kt, tt = kb._slice(1, 1, None, 2), tb[:, 1::2]
    assert_close(kf(ks, kt), tf(ts, tt))
    ke, te = kb._slice(0, 0, 1, 1).expand(4, 6), tb[0:1].expand(4, 6)  # expanded
    assert_close(kf(ke, ka), tf(te, ta))


def test_binary_special_values():
    vals = np.array([math.nan, math.inf, -math.inf, 0.0, -0.0, 1.0, -1.0, 2.5, 1e30])
    a = np.repeat(vals, len(vals))
    b = np.tile(vals, len(vals))
    ka, ta = both(a)
    kb, tb = both(b)
    for name in ["add", "sub", "mul", "div", "floor_divide", "remainder", "fmod", "pow", "maximum",
                 "minimum", "fmax", "fmin", "atan2", "hypot", "eq", "lt", "ge"]:
        kf, tf = BINARY[name][:2]
        got, want = kf(ka, kb), tf(ta, tb)
        assert_close(got, want, atol=0)
        if got.dtype.is_floating_point:
            g, w = got.numpy(), want.numpy()
            z = w == 0
            np.testing.assert_array_equal(np.signbit(g[z]), np.signbit(w[z]), err_msg=name)


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES[:7], ids=str)
@pytest.mark.parametrize("name", [n for n, s in BINARY.items() if s[5]])
def test_binary_grad_matches_torch(name, shapes):
    kf, tf = BINARY[name][:2]
    a, b = binary_inputs(name, *shapes, seed=3)
    ka, ta = both(a, requires_grad=True)
    kb, tb = both(b, requires_grad=True)
    kf(ka, kb).sum().backward()
    tf(ta, tb).sum().backward()
    assert_close(ka.grad, ta.grad)
    assert_close(kb.grad, tb.grad)


@pytest.mark.parametrize("name", [n for n, s in BINARY.items() if s[5]])
def test_binary_gradcheck(name):
    kf = BINARY[name][0]
    a, b = binary_inputs(name, (2, 3), (3,), seed=6)
    ka = kiln.tensor(a, requires_grad=True)
    kb = kiln.tensor(b, requires_grad=True)
    assert gradcheck(kf, (ka, kb))


@pytest.mark.parametrize("name", ["mul", "div", "pow", "atan2", "hypot", "maximum", "sub"])
def test_binary_gradgradcheck(name):
    gradgrad(BINARY[name][0], *binary_inputs(name, (2, 3), (3,), seed=7))


def test_extrema_ties_split_gradient():
    for kf, tf in [(kiln.maximum, torch.maximum), (kiln.minimum, torch.minimum),
                   (kiln.fmax, torch.fmax), (kiln.fmin, torch.fmin)]:
        ka, ta = both(np.array([1.0, 2.0, 3.0, math.nan, 1.0]), requires_grad=True)
        kb, tb = both(np.array([1.0, 0.0, 4.0, 1.0, math.nan]), requires_grad=True)
        assert_close(kf(ka, kb), tf(ta, tb))
        kf(ka, kb).sum().backward()
        tf(ta, tb).sum().backward()
        assert_close(ka.grad, ta.grad)
        assert_close(kb.grad, tb.grad)


def test_pow_scalar_exponents_and_bases():
    k, t = both(domain("pos", (3, 4), rng(1)), requires_grad=True)
    for e in (2, 3, 0, -1, 0.5, -2.5, 1):
        assert_close(k ** e, t ** e)
        assert_close(kiln.pow(k, e), torch.pow(t, e))
        assert_close(e ** k if e != 0 else (2 ** k), e ** t if e != 0 else (2 ** t))
    (k ** 3 + 2.0 ** k + k.pow(0)).sum().backward()
    (t ** 3 + 2.0 ** t + t.pow(0)).sum().backward()
    assert_close(k.grad, t.grad)
    assert gradcheck(lambda x: x ** 2.5 + 3 ** x, (kiln.tensor(domain("pos", (4,), rng(2)),
                                                               requires_grad=True),))


def test_pow_integer_rules():
    i = kiln.tensor([2, -3, 0, 1, -1])
    ti = torch.tensor([2, -3, 0, 1, -1])
    assert_close(i ** 3, ti ** 3)
    assert (i ** 3).dtype == kiln.int64
    assert (2 ** kiln.tensor([1, 2, 3])).tolist() == [2, 4, 8]
    assert_close(i ** kiln.tensor([-1, -2, -1, -3, -3]), ti ** torch.tensor([-1, -2, -1, -3, -3]))
    assert_close(i ** 2.0, ti ** 2.0)
    assert_close(kiln.tensor([3], dtype=kiln.int32) ** 40, torch.tensor([3], dtype=torch.int32) ** 40)
    with pytest.raises(RuntimeError, match=r"\[pow\] integers to negative integer powers"):
        i ** -1
    with pytest.raises(RuntimeError, match=r"\[pow\]"):
        i.pow_(-2)


def test_floor_divide_and_remainder_signs():
    a = np.array([7, -7, 7, -7, 0, 5, -5])
    b = np.array([2, 2, -2, -2, 3, 5, 5])
    for dt in ("int64", "int32", "int8", "float32", "float64"):
        ka, ta = both(a.astype(dt))
        kb, tb = both(b.astype(dt))
        assert_close(ka // kb, ta // tb)
        assert_close(ka % kb, ta % tb)
        assert_close(kiln.fmod(ka, kb), torch.fmod(ta, tb))
        assert_close(kiln.div(ka, kb, rounding_mode="floor"), torch.div(ta, tb, rounding_mode="floor"))
        assert_close(kiln.div(ka, kb, rounding_mode="trunc"), torch.div(ta, tb, rounding_mode="trunc"))
        assert_close(ka.div(kb, rounding_mode="trunc"), ta.div(tb, rounding_mode="trunc"))
    with pytest.raises(ValueError, match=r"\[div\] expected rounding_mode"):
        kiln.div(kiln.ones(2), 2, rounding_mode="up")


def test_integer_min_divided_by_minus_one_does_not_trap():
    for dt, lo in (("int64", -2**63), ("int32", -2**31)):
        ka, ta = both(np.array([lo, 7], dtype=dt))
        kb, tb = both(np.array([-1, -1], dtype=dt))
        assert_close(ka // kb, ta // tb)
        assert_close(ka % kb, ta % tb)
        assert_close(kiln.fmod(ka, kb), torch.fmod(ta, tb))


@pytest.mark.parametrize("expr", [
    lambda x, z: x // z, lambda x, z: x % z, lambda x, z: kiln.fmod(x, z),
    lambda x, z: kiln.floor_divide(x, 0), lambda x, z: 5 // z, lambda x, z: x.remainder_(z),
    lambda x, z: x.__ifloordiv__(0), lambda x, z: kiln.div(x, z, rounding_mode="trunc"),
    lambda x, z: kiln.div(x, z, rounding_mode="floor"),
])
@pytest.mark.parametrize("dtype", ["int64", "int32", "uint8", "int8"])
def test_integer_division_by_zero_raises(expr, dtype):
    x = kiln.tensor(np.array([4, 6, 8], dtype=dtype))
    z = kiln.tensor(np.array([1, 0, 2], dtype=dtype))
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        expr(x, z)
    assert x.tolist() == [4, 6, 8]  # nothing half-written


def test_divisor_that_wraps_to_zero_raises():
    """-2**63 and 256 are nonzero but become 0 in uint8: still a clean error, not SIGFPE."""
    x = kiln.tensor(np.array([1, 2, 3], dtype=np.uint8))
    for number in (-(2**63), 256, 512):
        for fn in (kiln.remainder, kiln.floor_divide, kiln.fmod):
            with pytest.raises(RuntimeError, match="ZeroDivisionError"):
                fn(x, number)
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        kiln.tensor([5, 6], dtype=kiln.int8).remainder_(256)


def test_float_division_by_zero_gives_inf_nan():
    k, t = both(np.array([1.0, -1.0, 0.0]))
    z, tz = both(np.zeros(3))
    for op in (operator.truediv, operator.floordiv, operator.mod):
        assert_close(op(k, z), op(t, tz))


def test_backward_saves_only_what_the_formula_needs():
    """exp/tanh/sigmoid/relu save their output: changing the input in place afterwards is fine
    (as in torch); sin saves its input, so changing it is caught."""
    for name in ("exp", "tanh", "sigmoid", "relu", "sqrt"):
        kf, tf = UNARY[name][:2]
        k, t = both(domain("pos", (4,), rng(1)), requires_grad=True)
        kx, tx = k * 1.0, t * 1.0
        ky, ty = kf(kx), tf(tx)
        kx.add_(1.0)
        tx.add_(1.0)
        ky.sum().backward()
        ty.sum().backward()
        assert_close(k.grad, t.grad)
    k = kiln.tensor([0.5, 1.0], requires_grad=True)
    x = k * 1.0
    y = x.sin()
    x.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation|version"):
        y.sum().backward()


def test_half_precision_binary():
    for dt in (kiln.float16, kiln.bfloat16):
        ka, ta = both(domain("pos", (3, 4), rng(1)), dtype=dt)
        kb, tb = both(domain("nonzero", (4,), rng(2)), dtype=dt)
        for name in ("add", "mul", "div", "maximum", "pow", "atan2", "remainder", "lt"):
            kf, tf = BINARY[name][:2]
            assert_close(kf(ka, kb), tf(ta, tb), rtol=2e-2, atol=2e-2)
        assert_close(ka * 2.5 + 1, ta * 2.5 + 1, rtol=2e-2, atol=2e-2)


def test_binary_inplace_into_noncontiguous_view():
    base, tbase = both(domain(None, (4, 3), rng(1)))
    kb, tb = both(domain("nonzero", (4,), rng(2)))
    view, tview = base.transpose(0, 1), tbase.transpose(0, 1)
    for method in ("add_", "mul_", "div_", "remainder_", "pow_", "hypot_", "atan2_"):
        assert getattr(view, method)(kb) is view
        getattr(tview, method)(tb)
        assert_close(base, tbase)
    stepped, tstepped = base._slice(0, 0, None, 2), tbase[::2]
    stepped //= 0.7
    tstepped //= 0.7
    assert_close(base, tbase)
