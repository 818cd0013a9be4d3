"""Elementwise ops: values, dtypes, layouts, special values and gradients against PyTorch."""

import math
import operator

import kiln
import numpy as np
import pytest
from compare import assert_close, both, dtype_name, require_torch
from kiln.autograd import gradcheck, gradgradcheck

torch = require_torch()
F = torch.nn.functional


# ---- input domains ------------------------------------------------------------------


def _domain(kind, shape, rng, dtype=np.float64):
    x = rng.standard_normal(shape)
    if kind == "pos":
        x = np.abs(x) + 0.5
    elif kind == "unit":
        x = np.tanh(x) * 0.9
    elif kind == "nonzero":
        x = np.where(x < 0, x - 0.3, x + 0.3)
    elif kind == "gt-1":
        x = np.abs(x) - 0.5
    elif kind == "small":
        x = np.tanh(x)
    elif kind == "nonint":  # away from integers and half-integers (rounding is discontinuous)
        x = np.floor(x * 3) + 0.1 + 0.3 * rng.random(shape)
    return x.astype(dtype)


def _rng(seed=0):
    return np.random.default_rng(seed)


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
FLOAT_DTYPES = [kiln.float32, kiln.float64]


def _unary_input(name, shape, dtype=np.float64, seed=0):
    return _domain(UNARY[name][2], shape, _rng(seed), dtype)


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
    data = _unary_input(name, shape, seed=seed) if name else _domain(None, shape, _rng(seed))
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
    g = _rng(5).standard_normal((3, 4))
    kg, tg = both(g)
    kf(k).backward(kg)
    tf(t).backward(tg)
    assert_close(k.grad, t.grad)


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_unary_gradcheck(name):
    kf = UNARY[name][0]
    x = kiln.tensor(_unary_input(name, (2, 3), seed=3), requires_grad=True)
    assert gradcheck(kf, (x,))


def _gradgrad(fn, *arrays):
    """gradgradcheck with a fixed random grad_output (double backward through fn's formula)."""
    ins = tuple(kiln.tensor(a, requires_grad=True) for a in arrays)
    out = fn(*ins)
    go = kiln.tensor(_rng(11).standard_normal(tuple(out.shape)), requires_grad=True)
    assert gradgradcheck(fn, ins, grad_outputs=(go,))
    # The same by hand: gradcheck of the first-order gradient built with create_graph=True.
    n = len(ins)

    def first_grads(*args):
        outs = fn(*args[:n])
        return kiln.autograd.grad([outs], list(args[:n]), [args[n]], create_graph=True)

    assert gradcheck(first_grads, ins + (go,))


@pytest.mark.parametrize("name", ["exp", "log", "sin", "cos", "tanh", "sigmoid", "sqrt", "rsqrt",
                                  "reciprocal", "gelu", "gelu_tanh", "silu", "softplus", "erf",
                                  "atan", "asin", "log1p", "expm1", "abs", "relu", "square"])
def test_unary_gradgradcheck(name):
    _gradgrad(UNARY[name][0], _unary_input(name, (2, 3), seed=4))


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
        k, t = both(_domain("pos", (4, 4), _rng(2)), dtype=dt)
        for kf, tf in [(kiln.exp, torch.exp), (kiln.sqrt, torch.sqrt), (kiln.sigmoid, torch.sigmoid),
                       (kiln.gelu, F.gelu), (kiln.log, torch.log)]:
            assert_close(kf(k), tf(t), rtol=2e-2, atol=2e-2)


# ---- binary ops -----------------------------------------------------------------------

# name -> (kiln fn, torch fn, domain of a, domain of b, accepts ints, differentiable)
BINARY = {
    "add": (kiln.add, torch.add, None, None, True, True),
    "sub": (kiln.sub, torch.sub, None, None, True, True),
    "mul": (kiln.mul, torch.mul, None, None, True, True),
    "div": (kiln.div, torch.div, None, "nonzero", True, True),
    "true_divide": (kiln.true_divide, torch.true_divide, None, "nonzero", True, False),
    "floor_divide": (kiln.floor_divide, torch.floor_divide, None, "nonzero", True, False),
    "remainder": (kiln.remainder, torch.remainder, "nonint", "pos", True, True),
    "fmod": (kiln.fmod, torch.fmod, "nonint", "pos", True, True),
    "pow": (kiln.pow, torch.pow, "pos", None, True, True),
    "maximum": (kiln.maximum, torch.maximum, None, None, True, True),
    "minimum": (kiln.minimum, torch.minimum, None, None, True, True),
    "fmax": (kiln.fmax, torch.fmax, None, None, True, True),
    "fmin": (kiln.fmin, torch.fmin, None, None, True, True),
    "atan2": (kiln.atan2, torch.atan2, None, "nonzero", True, True),
    "hypot": (kiln.hypot, torch.hypot, "nonzero", None, False, True),
    "rsub": (kiln.rsub, torch.rsub, None, None, True, True),
    "eq": (kiln.eq, torch.eq, "nonint", "nonint", True, False),
    "ne": (kiln.ne, torch.ne, None, None, True, False),
    "lt": (kiln.lt, torch.lt, None, None, True, False),
    "le": (kiln.le, torch.le, None, None, True, False),
    "gt": (kiln.gt, torch.gt, None, None, True, False),
    "ge": (kiln.ge, torch.ge, None, None, True, False),
    "logical_and": (kiln.logical_and, torch.logical_and, None, None, True, False),
    "logical_or": (kiln.logical_or, torch.logical_or, None, None, True, False),
    "logical_xor": (kiln.logical_xor, torch.logical_xor, None, None, True, False),
    "bitwise_and": (kiln.bitwise_and, torch.bitwise_and, None, None, True, False),
    "bitwise_or": (kiln.bitwise_or, torch.bitwise_or, None, None, True, False),
    "bitwise_xor": (kiln.bitwise_xor, torch.bitwise_xor, None, None, True, False),
}
BITWISE = ("bitwise_and", "bitwise_or", "bitwise_xor")
FLOAT_BINARY = [n for n in BINARY if n not in BITWISE]
BROADCAST_SHAPES = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((2, 3, 4), (4,)), ((), (3,)), ((4,), ()),
                    ((0, 3), (1, 3)), ((5, 1, 2), (3, 1)), ((1,), ()), ((2, 0), (2, 1))]


def _binary_inputs(name, sa, sb, dtype=np.float64, seed=0):
    _, _, da, db, _, _ = BINARY[name]
    rng = _rng(seed)
    return _domain(da, sa, rng, dtype), _domain(db, sb, rng, dtype)


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_name)
@pytest.mark.parametrize("name", FLOAT_BINARY)
def test_binary_values_and_broadcasting(name, dtype, shapes):
    kf, tf = BINARY[name][:2]
    a, b = _binary_inputs(name, *shapes)
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
    a, b = _binary_inputs(name, (4, 6), (6, 4), seed=2)
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
    a, b = _binary_inputs(name, *shapes, seed=3)
    ka, ta = both(a, requires_grad=True)
    kb, tb = both(b, requires_grad=True)
    kf(ka, kb).sum().backward()
    tf(ta, tb).sum().backward()
    assert_close(ka.grad, ta.grad)
    assert_close(kb.grad, tb.grad)


@pytest.mark.parametrize("name", [n for n, s in BINARY.items() if s[5]])
def test_binary_gradcheck(name):
    kf = BINARY[name][0]
    a, b = _binary_inputs(name, (2, 3), (3,), seed=6)
    ka = kiln.tensor(a, requires_grad=True)
    kb = kiln.tensor(b, requires_grad=True)
    assert gradcheck(kf, (ka, kb))


@pytest.mark.parametrize("name", ["mul", "div", "pow", "atan2", "hypot", "maximum", "sub"])
def test_binary_gradgradcheck(name):
    _gradgrad(BINARY[name][0], *_binary_inputs(name, (2, 3), (3,), seed=7))


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
    k, t = both(_domain("pos", (3, 4), _rng(1)), requires_grad=True)
    for e in (2, 3, 0, -1, 0.5, -2.5, 1):
        assert_close(k ** e, t ** e)
        assert_close(kiln.pow(k, e), torch.pow(t, e))
        assert_close(e ** k if e != 0 else (2 ** k), e ** t if e != 0 else (2 ** t))
    (k ** 3 + 2.0 ** k + k.pow(0)).sum().backward()
    (t ** 3 + 2.0 ** t + t.pow(0)).sum().backward()
    assert_close(k.grad, t.grad)
    assert gradcheck(lambda x: x ** 2.5 + 3 ** x, (kiln.tensor(_domain("pos", (4,), _rng(2)),
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


def test_float_division_by_zero_gives_inf_nan():
    k, t = both(np.array([1.0, -1.0, 0.0]))
    z, tz = both(np.zeros(3))
    for op in (operator.truediv, operator.floordiv, operator.mod):
        assert_close(op(k, z), op(t, tz))


# ---- Python operators and numbers ------------------------------------------------------

OPERATORS = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "//": operator.floordiv, "%": operator.mod, "**": operator.pow, "&": operator.and_,
    "|": operator.or_, "^": operator.xor, "<": operator.lt, "==": operator.eq, ">=": operator.ge,
}
INPLACE = {
    "+": operator.iadd, "-": operator.isub, "*": operator.imul, "/": operator.itruediv,
    "//": operator.ifloordiv, "%": operator.imod, "**": operator.ipow, "&": operator.iand,
    "|": operator.ior, "^": operator.ixor,
}
OPERAND_DATA = {
    "float32": [1.5, -2.0, 3.25], "float64": [1.5, -2.0, 3.25], "int64": [3, -2, 7],
    "int32": [3, -2, 7], "uint8": [3, 2, 7], "bool": [True, True, False],
}
NUMBERS = [2, -3, 2.5, True, 0.0]


def _same_outcome(kfn, tfn):
    """Both raise, or both return equal values and dtypes."""
    try:
        want = tfn()
    except (RuntimeError, TypeError, NotImplementedError, ZeroDivisionError):
        with pytest.raises((RuntimeError, TypeError, ValueError)):
            kfn()
        return None
    got = kfn()
    assert_close(got, want, rtol=1e-6, atol=1e-6)
    return got


@pytest.mark.parametrize("number", NUMBERS, ids=repr)
@pytest.mark.parametrize("dtype", list(OPERAND_DATA))
@pytest.mark.parametrize("sym", list(OPERATORS))
def test_operators_with_python_numbers(sym, dtype, number):
    op = OPERATORS[sym]
    k, t = both(np.array(OPERAND_DATA[dtype], dtype=dtype))
    _same_outcome(lambda: op(k, number), lambda: op(t, number))
    _same_outcome(lambda: op(number, k), lambda: op(number, t))


@pytest.mark.parametrize("db", list(OPERAND_DATA))
@pytest.mark.parametrize("da", list(OPERAND_DATA))
@pytest.mark.parametrize("sym", list(OPERATORS))
def test_operators_between_tensors(sym, da, db):
    op = OPERATORS[sym]
    ka, ta = both(np.array(OPERAND_DATA[da], dtype=da))
    kb, tb = both(np.array(OPERAND_DATA[db], dtype=db))
    if sym in ("//", "%") and db != "bool" or sym not in ("//", "%"):
        _same_outcome(lambda: op(ka, kb), lambda: op(ta, tb))
    # 0-dim tensors promote like numbers of their category.
    k0, t0 = both(np.array(OPERAND_DATA[db][0], dtype=db))
    if sym not in ("//", "%") or OPERAND_DATA[db][0]:
        _same_outcome(lambda: op(ka, k0), lambda: op(ta, t0))


@pytest.mark.parametrize("other", NUMBERS + ["float32", "int64", "bool"], ids=repr)
@pytest.mark.parametrize("dtype", list(OPERAND_DATA))
@pytest.mark.parametrize("sym", list(INPLACE))
def test_inplace_operators(sym, dtype, other):
    op = INPLACE[sym]
    k, t = both(np.array(OPERAND_DATA[dtype], dtype=dtype))
    if isinstance(other, str):
        ko, to = both(np.array(OPERAND_DATA[other], dtype=other))
    else:
        ko, to = other, other
    if sym in ("//", "%") and (other == 0.0 or other == "bool") and dtype != "float32":
        return  # division by zero, covered elsewhere
    kid = id(k)
    try:
        want = op(t, to)
    except (RuntimeError, TypeError, NotImplementedError, ZeroDivisionError):
        with pytest.raises((RuntimeError, TypeError, ValueError)):
            op(k, ko)
        return
    got = op(k, ko)
    assert id(got) == kid
    assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_named_inplace_methods_return_self():
    x = kiln.tensor([1.0, 2.0, 3.0])
    t = torch.tensor([1.0, 2.0, 3.0])
    for name, arg in [("add_", 2), ("sub_", 1), ("mul_", 3), ("div_", 2), ("pow_", 2),
                      ("remainder_", 4), ("fmod_", 3), ("floor_divide_", 2), ("atan2_", [1.5]),
                      ("hypot_", [2.0]), ("clamp_", 1), ("clamp_min_", 1.5), ("clamp_max_", 100)]:
        karg, targ = (kiln.tensor(arg), torch.tensor(arg)) if isinstance(arg, list) else (arg, arg)
        assert getattr(x, name)(karg) is x
        getattr(t, name)(targ)
        assert_close(x, t)
    assert x.add_(kiln.ones(3), alpha=2) is x
    t.add_(torch.ones(3), alpha=2)
    assert_close(x, t)


def test_add_sub_alpha_and_rsub():
    k, t = both(np.array([1.0, 2.0]))
    assert_close(kiln.add(k, k, alpha=3), torch.add(t, t, alpha=3))
    assert_close(kiln.sub(k, 1, alpha=0.5), torch.sub(t, 1, alpha=0.5))
    assert_close(k.sub(k, alpha=2), t.sub(t, alpha=2))
    assert_close(kiln.rsub(k, 5), torch.rsub(t, 5))
    assert_close(kiln.rsub(k, k * 3, alpha=2), torch.rsub(t, t * 3, alpha=2))
    assert_close(2 - k, 2 - t)
    assert_close(kiln.subtract(k, 1), torch.subtract(t, 1))
    assert_close(kiln.multiply(k, 3), torch.multiply(t, 3))


def test_unary_operators():
    k, t = both(np.array([1.5, -2.0, 0.0]))
    assert_close(-k, -t)
    assert_close(abs(k), abs(t))
    assert_close(+k, +t)
    ki, ti = both(np.array([5, -3, 0]))
    assert_close(~ki, ~ti)
    kb, tb = both(np.array([True, False]))
    assert_close(~kb, ~tb)
    assert (~kb).dtype == kiln.bool
    with pytest.raises(TypeError, match=r"\[bitwise_not\]"):
        _ = ~k
    with pytest.raises(TypeError, match=r"\[neg\]"):
        _ = -kb


def test_reflected_comparisons():
    k, t = both(np.array([1.0, 2.0, 3.0]))
    assert_close(2 < k, 2 < t)
    assert_close(2 == k, 2 == t)
    assert_close(2.5 >= k, 2.5 >= t)
    assert (k == "a") is False or not isinstance(k == "a", kiln.Tensor)


def test_logical_and_bitwise_on_bool_and_ints():
    ka, ta = both(np.array([True, False, True]))
    kb, tb = both(np.array([True, True, False]))
    for op in (operator.and_, operator.or_, operator.xor):
        assert_close(op(ka, kb), op(ta, tb))
        assert_close(op(ka, True), op(ta, True))
    ki, ti = both(np.array([12, 10, -1]))
    for op in (operator.and_, operator.or_, operator.xor):
        assert_close(op(ki, 6), op(ti, 6))
        assert_close(op(6, ki), op(6, ti))
    for name in ("logical_and", "logical_or", "logical_xor"):
        kx, tx = both(np.array([0.0, 1.5, -2.0]))
        assert_close(getattr(kiln, name)(kx, ki), getattr(torch, name)(tx, ti))
        y, ty = kx.clone(), tx.clone()
        assert getattr(y, name + "_")(ki) is y
        getattr(ty, name + "_")(ti)
        assert_close(y, ty)
    with pytest.raises(TypeError, match=r"\[bitwise_and\] expected bool or integer"):
        kiln.ones(2) & kiln.ones(2)
    with pytest.raises(TypeError, match=r"\[bitwise_or\]"):
        ki | 1.5


def test_inplace_result_type_must_fit():
    x = kiln.tensor([1, 2])
    with pytest.raises(TypeError, match=r"result type"):
        x /= 2
    with pytest.raises(TypeError, match=r"result type"):
        x += 1.5
    b = kiln.tensor([True, False])
    with pytest.raises(TypeError):
        b += 1
    assert x.tolist() == [1, 2]


# ---- clamp, lerp, masked_fill, addcmul/addcdiv, where, nan_to_num -----------------------


@pytest.mark.parametrize("dtype", FLOAT_DTYPES + [kiln.int64, kiln.int32], ids=dtype_name)
def test_clamp_values(dtype):
    data = np.array([[-3.0, -1.0, 0.0], [0.5, 2.0, 7.0]])
    k, t = both(data, dtype=dtype)
    for lo, hi in [(-1, 1), (0, None), (None, 2), (-1.5, 0.5), (2, -2), (0.0, 0.0)]:
        for kf, tf in [(kiln.clamp, torch.clamp), (kiln.clip, torch.clip)]:
            assert_close(kf(k, lo, hi), tf(t, lo, hi))
        assert_close(k.clamp(min=lo, max=hi), t.clamp(min=lo, max=hi))
    assert_close(k.clamp_min(1), t.clamp_min(1))
    assert_close(kiln.clamp_max(k, 1), torch.clamp_max(t, 1))
    lo_k, lo_t = both(np.array([-2.0, 0.0, 1.0]), dtype=dtype)
    hi_k, hi_t = both(np.array([[1.0], [5.0]]), dtype=dtype)
    assert_close(kiln.clamp(k, lo_k, hi_k), torch.clamp(t, lo_t, hi_t))
    assert_close(kiln.clamp(k, min=lo_k), torch.clamp(t, min=lo_t))
    assert_close(kiln.clamp(k.transpose(0, 1), max=hi_k.transpose(0, 1)),
                 torch.clamp(t.transpose(0, 1), max=hi_t.transpose(0, 1)))


def test_clamp_special_values_and_errors():
    k, t = both(np.array([math.nan, math.inf, -math.inf, -0.0, 1.0]))
    assert_close(k.clamp(-1, 1), t.clamp(-1, 1))
    assert_close(k.clamp(min=math.nan), t.clamp(min=math.nan))
    with pytest.raises(ValueError, match=r"\[clamp\] at least one of 'min' or 'max'"):
        kiln.clamp(k)
    with pytest.raises(ValueError, match=r"\[clamp\] shapes \[5\] and \[2\]"):
        kiln.clamp(k, kiln.zeros(2))
    assert kiln.clamp(kiln.tensor([1, 5]), max=2.5).dtype == kiln.float32
    assert kiln.clamp(kiln.empty(0, 2), 0, 1).shape == (0, 2)


def test_clamp_inplace():
    k, t = both(np.array([-3.0, 0.5, 9.0]))
    assert k.clamp_(-1, 1) is k
    t.clamp_(-1, 1)
    assert_close(k, t)
    assert k.clip_(max=0.0) is k
    t.clip_(max=0.0)
    assert_close(k, t)
    i = kiln.tensor([1, 5, 9])
    with pytest.raises(TypeError, match="result type"):
        i.clamp_(0.5, 2.5)


def test_clamp_gradient_passes_at_boundary():
    data = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    k, t = both(data, requires_grad=True)
    k.clamp(-1, 1).sum().backward()
    t.clamp(-1, 1).sum().backward()
    assert_close(k.grad, t.grad)
    assert k.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    k, t = both(data, requires_grad=True)
    klo, tlo = both(np.array([-1.5, -1.0, 0.5, 0.0, 0.0]), requires_grad=True)
    khi, thi = both(np.array([1.0]), requires_grad=True)
    kiln.clamp(k, klo, khi).sum().backward()
    torch.clamp(t, tlo, thi).sum().backward()
    for a, b in [(k, t), (klo, tlo), (khi, thi)]:
        assert_close(a.grad, b.grad)


def test_clamp_gradcheck():
    x = kiln.tensor(np.array([-2.1, -0.3, 0.4, 1.7, 0.05]), requires_grad=True)
    lo = kiln.tensor(np.array([-1.0, -0.5, 0.7, -3.0, -1.0]), requires_grad=True)
    hi = kiln.tensor(np.array([1.0]), requires_grad=True)
    assert gradcheck(lambda a, b, c: kiln.clamp(a, b, c), (x, lo, hi))
    assert gradcheck(lambda a: a.clamp(-0.5, 0.5) * a, (x,))
    _gradgrad(lambda a: a.clamp(min=-0.5) * a, np.array([-2.1, -0.3, 0.4, 1.7]))


def test_lerp():
    for dt in FLOAT_DTYPES:
        ks, ts = both(_domain(None, (3, 4), _rng(1)), dtype=dt)
        ke, te = both(_domain(None, (4,), _rng(2)), dtype=dt)
        kw, tw = both(_domain(None, (3, 1), _rng(3)), dtype=dt)
        for w_k, w_t in [(0.3, 0.3), (0.75, 0.75), (1, 1), (kw, tw)]:
            assert_close(kiln.lerp(ks, ke, w_k), torch.lerp(ts, te, w_t))
            assert_close(ks.lerp(ke, w_k), ts.lerp(te, w_t))
        y, ty = ks.clone(), ts.clone()
        assert y.lerp_(ke, 0.25) is y
        ty.lerp_(te, 0.25)
        assert_close(y, ty)
    with pytest.raises(TypeError, match=r"\[lerp\]"):
        kiln.lerp(kiln.tensor([1, 2]), kiln.tensor([3, 4]), 0.5)
    with pytest.raises(TypeError, match=r"\[lerp\] expected start and end"):
        kiln.lerp(kiln.ones(2), kiln.ones(2, dtype=kiln.float64), 0.5)


def test_lerp_grad():
    ks, ts = both(_domain(None, (2, 3), _rng(1)), requires_grad=True)
    ke, te = both(_domain(None, (3,), _rng(2)), requires_grad=True)
    kw, tw = both(_domain(None, (2, 1), _rng(3)), requires_grad=True)
    kiln.lerp(ks, ke, kw).sum().backward()
    torch.lerp(ts, te, tw).sum().backward()
    for a, b in [(ks, ts), (ke, te), (kw, tw)]:
        assert_close(a.grad, b.grad)
    assert gradcheck(lambda a, b, c: kiln.lerp(a, b, c), (ks.detach().requires_grad_(),
                                                         ke.detach().requires_grad_(),
                                                         kw.detach().requires_grad_()))
    _gradgrad(lambda a, b: kiln.lerp(a, b, 0.3) * a, _domain(None, (3,), _rng(4)),
              _domain(None, (3,), _rng(5)))


def test_masked_fill():
    k, t = both(_domain(None, (3, 4), _rng(1)))
    km, tm = both(_rng(2).random((3, 4)) > 0.5)
    kr, tr = both(_rng(3).random((4,)) > 0.5)
    for v in (0.5, -1, math.inf, True):
        assert_close(k.masked_fill(km, v), t.masked_fill(tm, v))
        assert_close(kiln.masked_fill(k, kr, v), torch.masked_fill(t, tr, v))
    ki, ti = both(np.arange(6).reshape(2, 3))
    kmi, tmi = both(np.array([True, False, True]))
    assert_close(ki.masked_fill(kmi, 2.7), ti.masked_fill(tmi, 2.7))
    assert_close(ki.masked_fill(kmi, kiln.tensor(9)), ti.masked_fill(tmi, torch.tensor(9)))
    y, ty = k.clone(), t.clone()
    assert y.masked_fill_(kr, -5.0) is y
    ty.masked_fill_(tr, -5.0)
    assert_close(y, ty)
    with pytest.raises(TypeError, match=r"\[masked_fill\] expected mask to be a bool"):
        k.masked_fill(kiln.ones(3, 4), 0)
    with pytest.raises(ValueError, match=r"\[masked_fill\] only supports a 0-dimensional"):
        k.masked_fill(km, kiln.ones(2))


def test_masked_fill_grad():
    k, t = both(_domain(None, (3, 4), _rng(1)), requires_grad=True)
    km, tm = both(_rng(2).random((4,)) > 0.5)
    kv, tv = both(np.array(2.0), requires_grad=True)
    (k.masked_fill(km, kv) * k).sum().backward()
    (t.masked_fill(tm, tv) * t).sum().backward()
    assert_close(k.grad, t.grad)
    assert_close(kv.grad, tv.grad)
    assert gradcheck(lambda a: a.masked_fill(km, 0.0) * a, (k.detach().requires_grad_(),))


@pytest.mark.parametrize("name", ["addcmul", "addcdiv"])
def test_addcmul_addcdiv(name):
    kf, tf = getattr(kiln, name), getattr(torch, name)
    for dt in FLOAT_DTYPES:
        ka, ta = both(_domain(None, (3, 4), _rng(1)), dtype=dt)
        kb, tb = both(_domain(None, (4,), _rng(2)), dtype=dt)
        kc, tc = both(_domain("nonzero", (3, 1), _rng(3)), dtype=dt)
        for v in (1, 0.5, -2):
            assert_close(kf(ka, kb, kc, value=v), tf(ta, tb, tc, value=v))
            assert_close(getattr(ka, name)(kb, kc, value=v), getattr(ta, name)(tb, tc, value=v))
        y, ty = ka.clone(), ta.clone()
        assert getattr(y, name + "_")(kb, kc, value=0.1) is y
        getattr(ty, name + "_")(tb, tc, value=0.1)
        assert_close(y, ty)
        # Non-contiguous self, written in place.
        y, ty = ka.clone().transpose(0, 1), ta.clone().transpose(0, 1)
        getattr(y, name + "_")(kc.transpose(0, 1), kb.unsqueeze(1), value=3)
        getattr(ty, name + "_")(tc.transpose(0, 1), tb.unsqueeze(1), value=3)
        assert_close(y, ty)
    ki, ti = both(np.array([1, 2, 3]))
    if name == "addcmul":
        assert_close(kf(ki, ki, ki, value=2), tf(ti, ti, ti, value=2))
    else:
        with pytest.raises(TypeError, match=r"\[addcdiv\] integer division"):
            kf(ki, ki, ki)
    # Grads, gradcheck and double backward.
    ka, ta = both(_domain(None, (2, 3), _rng(1)), requires_grad=True)
    kb, tb = both(_domain(None, (3,), _rng(2)), requires_grad=True)
    kc, tc = both(_domain("nonzero", (2, 1), _rng(3)), requires_grad=True)
    kf(ka, kb, kc, value=0.7).sum().backward()
    tf(ta, tb, tc, value=0.7).sum().backward()
    for a, b in [(ka, ta), (kb, tb), (kc, tc)]:
        assert_close(a.grad, b.grad)
    fresh = [x.detach().requires_grad_() for x in (ka, kb, kc)]
    assert gradcheck(lambda a, b, c: kf(a, b, c, value=0.7), fresh)
    _gradgrad(lambda a, b, c: kf(a, b, c, value=0.7), ka.detach().numpy(), kb.detach().numpy(),
              kc.detach().numpy())


def test_addcmul_inplace_autograd():
    k, t = both(_domain(None, (3,), _rng(1)), requires_grad=True)
    ky, ty = k * 2, t * 2
    ky.addcmul_(k, k, value=0.5)
    ty.addcmul_(t, t, value=0.5)
    ky.sum().backward()
    ty.sum().backward()
    assert_close(k.grad, t.grad)


def test_where_with_numbers_and_grad():
    kc, tc = both(np.array([True, False, True]))
    k, t = both(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    assert_close(kiln.where(kc, k, 0.0), torch.where(tc, t, 0.0))
    assert_close(kiln.where(kc, 1, k), torch.where(tc, 1, t))
    assert_close(k.where(kc, -1), t.where(tc, -1))
    kiln.where(kc, k * 2, k).sum().backward()
    torch.where(tc, t * 2, t).sum().backward()
    assert_close(k.grad, t.grad)
    assert kiln.where(kc, kiln.tensor([1, 2, 3]), 1.5).dtype == kiln.float32


def test_nan_to_num():
    for dt in FLOAT_DTYPES + [kiln.float16]:
        k, t = both(np.array([math.nan, math.inf, -math.inf, 1.5, -0.0]), dtype=dt)
        assert_close(kiln.nan_to_num(k), torch.nan_to_num(t))
        assert_close(k.nan_to_num(nan=1.0, posinf=9.0, neginf=-9.0),
                     t.nan_to_num(nan=1.0, posinf=9.0, neginf=-9.0))
    ki, ti = both(np.array([1, 2]))
    assert_close(kiln.nan_to_num(ki), torch.nan_to_num(ti))
    k, t = both(np.array([math.nan, 2.0, math.inf]), requires_grad=True)
    kiln.nan_to_num(k).sum().backward()
    torch.nan_to_num(t).sum().backward()
    assert_close(k.grad, t.grad)


# ---- errors --------------------------------------------------------------------------


def test_bool_subtraction_and_negation_raise():
    b = kiln.tensor([True, False])
    with pytest.raises(TypeError, match=r"\[sub\] subtraction, the `-` operator, with a bool"):
        b - b
    with pytest.raises(TypeError, match=r"\[sub\]"):
        kiln.sub(b, True)
    with pytest.raises(TypeError, match=r"\[neg\]"):
        kiln.neg(b)


@pytest.mark.parametrize("name", ["add", "mul", "maximum", "pow", "atan2", "remainder", "eq",
                                  "logical_and", "fmin"])
def test_shape_mismatch_names_op_and_shapes(name):
    a, b = kiln.ones(2, 3), kiln.ones(4)
    with pytest.raises(ValueError, match=rf"\[{name}\] shapes \[2, 3\] and \[4\] are not "
                                         r"broadcastable"):
        getattr(kiln, name)(a, b)


def test_inplace_broadcast_to_self_shape_only():
    x = kiln.ones(3)
    with pytest.raises(ValueError, match=r"output with shape \[3\] doesn't match the broadcast "
                                         r"shape \[2, 3\]"):
        x += kiln.ones(2, 3)
    with pytest.raises(ValueError, match=r"\[masked_fill_\] output with shape \[3\]"):
        x.masked_fill_(kiln.tensor([[True], [False]]), 0.0)


def test_non_tensor_operands_are_rejected():
    x = kiln.ones(2)
    with pytest.raises(TypeError):
        x + "a"
    with pytest.raises(TypeError, match=r"\[maximum\] expected a Tensor or a number"):
        kiln.maximum(x, [1, 2])
    with pytest.raises(TypeError):
        x ** None


def test_inplace_on_leaf_requiring_grad_raises():
    x = kiln.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"\[exp_\]|\[exp\]|leaf"):
        x.exp_()
    with pytest.raises(RuntimeError, match="leaf"):
        x.clamp_(0, 1)


# ---- property-based broadcasting -------------------------------------------------------


hypothesis = pytest.importorskip("hypothesis")
st = pytest.importorskip("hypothesis.strategies")
hnp = pytest.importorskip("hypothesis.extra.numpy")

PROPERTY_OPS = ["add", "sub", "mul", "div", "maximum", "fmin", "atan2", "pow", "remainder", "lt",
                "logical_xor", "hypot"]


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4,
                                                           min_side=0, max_side=4),
                  name=st.sampled_from(PROPERTY_OPS),
                  dtype=st.sampled_from(["float32", "float64"]),
                  seed=st.integers(0, 2**16))
def test_property_broadcasting_matches_torch(shapes, name, dtype, seed):
    sa, sb = shapes.input_shapes
    a, b = _binary_inputs(name, sa, sb, seed=seed)
    kf, tf = BINARY[name][:2]
    ka, ta = both(a, dtype=getattr(kiln, dtype))
    kb, tb = both(b, dtype=getattr(kiln, dtype))
    got = kf(ka, kb)
    assert tuple(got.shape) == shapes.result_shape
    assert_close(got, tf(ta, tb))


@hypothesis.settings(max_examples=30, deadline=None)
@hypothesis.given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3,
                                                           min_side=1, max_side=3),
                  seed=st.integers(0, 2**16))
def test_property_ternary_broadcasting_and_grads(shapes, seed):
    sa, sb, sc = shapes.input_shapes
    rng = _rng(seed)
    a, b, c = (_domain("nonzero", s, rng) for s in (sa, sb, sc))
    ka, ta = both(a, requires_grad=True)
    kb, tb = both(b, requires_grad=True)
    kc, tc = both(c, requires_grad=True)
    for kf, tf in [(lambda x, y, z: kiln.addcdiv(x, y, z, value=0.5),
                    lambda x, y, z: torch.addcdiv(x, y, z, value=0.5)),
                   (kiln.lerp, torch.lerp), (kiln.clamp, torch.clamp)]:
        got, want = kf(ka, kb, kc), tf(ta, tb, tc)
        assert_close(got, want)
        got.sum().backward()
        try:
            want.sum().backward()
        except RuntimeError:  # torch's lerp backward rejects some 0-dim start shapes
            for x in (ka, kb, kc, ta, tb, tc):
                x.grad = None
            continue
        for x, y in [(ka, ta), (kb, tb), (kc, tc)]:
            assert_close(x.grad, y.grad)
            x.grad = None
            y.grad = None


def test_dtype_of_results_with_numbers():
    cases = [
        (kiln.ones(2, dtype=kiln.int32) // 2, kiln.int32),
        (kiln.ones(2, dtype=kiln.int32) % 2.5, kiln.float32),
        (kiln.ones(2, dtype=kiln.float16) ** 2, kiln.float16),
        (2.0 ** kiln.ones(2, dtype=kiln.int64), kiln.float32),
        (kiln.ones(2, dtype=kiln.uint8) & 3, kiln.uint8),
        (kiln.maximum(kiln.ones(2, dtype=kiln.int8), kiln.ones(2, dtype=kiln.int16)), kiln.int16),
        (kiln.atan2(kiln.ones(2, dtype=kiln.int64), kiln.ones(2, dtype=kiln.int64)), kiln.float32),
        (kiln.ones(2, dtype=kiln.float64) * kiln.tensor(2.0, dtype=kiln.float32), kiln.float64),
        (kiln.ones(2, dtype=kiln.float32) * kiln.tensor(2.0, dtype=kiln.float64), kiln.float32),
        (kiln.ones(2, dtype=kiln.int32) * kiln.tensor(2.0, dtype=kiln.float64), kiln.float64),
        (kiln.ones(2, dtype=kiln.int32) * 2.0, kiln.float32),
    ]
    for got, want in cases:
        assert got.dtype == want, (got.dtype, want)
