"""Custom autograd Functions, gradcheck/gradgradcheck, and anomaly mode."""

import kiln
import numpy as np
import pytest
from compare import assert_close, randn
from kiln.autograd import Function, gradcheck, gradgradcheck


def leaf(values, dtype=kiln.float64):
    return kiln.tensor(values, dtype=dtype, requires_grad=True)

# ---- custom Function -------------------------------------------------------------------------


class Scale(Function):
    @staticmethod
    def forward(ctx, x, factor, *, offset=0.0):
        ctx.save_for_backward(x)
        ctx.factor = factor
        return x * factor + offset

    @staticmethod
    def backward(ctx, grad):
        (_x,) = ctx.saved_tensors
        assert ctx.needs_input_grad == (True, False)
        return grad * ctx.factor, None


class Cube(Function):
    """backward written with kiln ops, so double backward flows through it."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 3 * x * x


class SplitSigns(Function):
    """Two outputs, one of them non-differentiable."""

    @staticmethod
    def forward(ctx, x, y):
        s = x * y
        mask = s.gt(0)
        ctx.mark_non_differentiable(mask)
        ctx.save_for_backward(x, y)
        return s, mask, x + y

    @staticmethod
    def backward(ctx, g_s, g_mask, g_sum):
        x, y = ctx.saved_tensors
        assert g_mask is None or g_mask.numel() == x.numel()
        return g_s * y + g_sum, g_s * x + g_sum


def test_function_basics():
    x = leaf([1.0, 2.0])
    out = Scale.apply(x, 3.0, offset=1.0)
    assert out.tolist() == [4.0, 7.0]
    assert out.grad_fn.name() == "ScaleBackward"
    assert out.grad_fn.next_functions[0][0].variable is x
    out.sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]
    with kiln.no_grad():
        assert Scale.apply(x, 2.0).grad_fn is None
    assert Scale.apply(kiln.ones(2), 2.0).grad_fn is None


def test_function_multiple_outputs_and_non_differentiable():
    x = leaf([1.0, -2.0])
    y = leaf([3.0, 4.0])
    s, mask, total = SplitSigns.apply(x, y)
    assert mask.dtype == kiln.bool and not mask.requires_grad
    assert s.requires_grad and total.requires_grad
    assert s.grad_fn is total.grad_fn or s.grad_fn == total.grad_fn
    (s.sum() + total.sum() * 2).backward()
    assert x.grad.tolist() == [5.0, 6.0] and y.grad.tolist() == [3.0, 0.0]
    x.grad = y.grad = None
    s, _, _ = SplitSigns.apply(x, y)
    s.sum().backward()  # unused outputs get zero gradients
    assert x.grad.tolist() == [3.0, 4.0]


def test_function_double_backward_and_gradcheck():
    x = kiln.tensor(randn(3), requires_grad=True)
    assert gradcheck(Cube.apply, (x,))
    assert gradgradcheck(Cube.apply, (x,))
    (g,) = kiln.autograd.grad(Cube.apply(x).sum(), x, create_graph=True)
    (gg,) = kiln.autograd.grad(g.sum(), x)
    assert_close(gg, x.detach() * 6)


def test_function_wrong_number_of_grads():
    class Bad(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g, g

    with pytest.raises(RuntimeError, match="incorrect number of gradients"):
        Bad.apply(leaf([1.0])).sum().backward()


def test_function_saved_tensor_version_check():
    x = leaf([1.0, 2.0])
    a = x * 1
    out = Cube.apply(a)
    a.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


def test_function_returning_input_keeps_input_history():
    class Identity(Function):
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, g):
            return g * 2

    x = leaf([1.0])
    y = Identity.apply(x)
    assert y is not x and x.is_leaf and y.grad_fn.name() == "IdentityBackward"
    y.sum().backward()
    assert x.grad.tolist() == [2.0]


# ---- gradcheck -----------------------------------------------------------------------------


def test_gradcheck_detects_wrong_gradient():
    class Wrong(Function):
        @staticmethod
        def forward(ctx, x):
            return x * x

        @staticmethod
        def backward(ctx, g):
            return g * 3

    x = kiln.tensor(randn(3), requires_grad=True)
    assert gradcheck(Wrong.apply, (x,), raise_exception=False) is False
    with pytest.raises(RuntimeError, match="Jacobian mismatch"):
        gradcheck(Wrong.apply, (x,))


def test_gradcheck_multiple_outputs_and_non_tensor_args():
    a = kiln.tensor(randn(2, 2), requires_grad=True)
    b = kiln.tensor(randn(2), requires_grad=False)
    assert gradcheck(lambda x, y, k: (x * y * k, (x * x).sum(1)), (a, b, 2.5))


def test_gradcheck_noncontiguous_and_empty_inputs():
    a = kiln.tensor(randn(3, 2)).transpose(0, 1).requires_grad_()
    assert not a.is_contiguous()
    assert gradcheck(lambda x: (x * x).sum(0) * x.sum(), (a,))
    e = kiln.zeros(0, 3, dtype=kiln.float64, requires_grad=True)
    assert gradcheck(lambda x: x * 2, (e,))


def test_gradgradcheck_detects_wrong_double_backward():
    class WrongSecond(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 2 * x.detach() * 1 + g * 0 * x  # first derivative right, second wrong

    x = kiln.tensor(randn(3), requires_grad=True)
    assert gradcheck(WrongSecond.apply, (x,))
    assert gradgradcheck(WrongSecond.apply, (x,), raise_exception=False) is False


# ---- anomaly mode ----------------------------------------------------------------------------


class NanBackward(Function):
    @staticmethod
    def forward(ctx, x):
        return x * 1

    @staticmethod
    def backward(ctx, g):
        return g * float("nan")


def _make_nan_output(x):
    return NanBackward.apply(x)  # this line must appear in the traceback


def test_anomaly_mode_names_function_and_forward_traceback():
    x = leaf([1.0, 2.0])
    with kiln.autograd.detect_anomaly():
        assert kiln.is_anomaly_enabled()
        y = _make_nan_output(x)
        with pytest.raises(RuntimeError) as info:
            (y * 2).sum().backward()
    msg = str(info.value)
    assert "NanBackwardBackward" in msg and "nan" in msg
    assert "Traceback of forward call" in msg
    assert "_make_nan_output" in msg and "NanBackward.apply(x)" in msg
    assert not kiln.is_anomaly_enabled()


def test_anomaly_mode_divide_by_zero_graph():
    x = leaf([1.0, 2.0])
    kiln.autograd.set_detect_anomaly(True)
    try:
        y = x / 0 * 0  # forward: nan; backward of the division gives 0/0
        with pytest.raises(RuntimeError, match=r"DivBackward0.*nan[\s\S]*x / 0 \* 0"):
            y.sum().backward()
    finally:
        kiln.autograd.set_detect_anomaly(False)
    assert not kiln.is_anomaly_enabled()
    y = x / 0 * 0
    y.sum().backward()  # without anomaly mode: no check
    assert np.isnan(x.grad.numpy()).all()


def test_anomaly_mode_decorator_and_context_form_of_set_detect_anomaly():
    @kiln.autograd.detect_anomaly()
    def f():
        return kiln.is_anomaly_enabled()

    assert f() and not kiln.is_anomaly_enabled()
    with kiln.autograd.set_detect_anomaly(True):
        assert kiln.is_anomaly_enabled()
    assert not kiln.is_anomaly_enabled()


def test_anomaly_mode_without_forward_trace():
    x = leaf([1.0])
    y = NanBackward.apply(x)  # created outside anomaly mode
    with kiln.autograd.detect_anomaly(), pytest.raises(RuntimeError, match="NanBackwardBackward"):
        y.sum().backward()


def test_function_set_materialize_grads_false_passes_none():
    seen = []

    class TwoOut(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.set_materialize_grads(False)
            return x * 2, x * 3

        @staticmethod
        def backward(ctx, g1, g2):
            seen.append((g1 is None, g2 is None))
            return (g1 * 2 if g1 is not None else 0) + (g2 * 3 if g2 is not None else 0)

    x = leaf([1.0])
    a, _ = TwoOut.apply(x)
    a.sum().backward()
    assert seen == [(False, True)] and x.grad.tolist() == [2.0]


def test_once_differentiable():
    from kiln.autograd.function import once_differentiable

    class Square(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        @once_differentiable
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 2 * x

    x = leaf([3.0])
    (g,) = kiln.autograd.grad(Square.apply(x).sum(), x, create_graph=True)
    assert g.tolist() == [6.0] and not g.requires_grad
