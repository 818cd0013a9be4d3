"""Python operators on tensors and numbers, type promotion, errors and property-based
broadcasting for elementwise ops."""

import operator

import kiln
import numpy as np
import pytest
from compare import assert_close, both, require_torch
from elementwise_cases import BINARY, binary_inputs, domain, rng

torch = require_torch()


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
    a, b = binary_inputs(name, sa, sb, seed=seed)
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
    r = rng(seed)
    a, b, c = (domain("nonzero", s, r) for s in (sa, sb, sc))
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
