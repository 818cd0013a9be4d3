"""Core tensor machinery: creation, dtype promotion, views, autograd basics."""

import numpy as np
import pytest

import kiln
from compare import assert_close, both, randn, require_torch


def test_tensor_from_lists_infers_dtypes():
    assert kiln.tensor([1.0, 2.0]).dtype == kiln.float32
    assert kiln.tensor([1, 2]).dtype == kiln.int64
    assert kiln.tensor([True, False]).dtype == kiln.bool
    assert kiln.tensor(np.zeros(3, dtype=np.float64)).dtype == kiln.float64
    assert kiln.tensor([[1, 2], [3, 4]], dtype=kiln.float64).tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_factories_shapes_and_values():
    assert kiln.zeros(2, 3).tolist() == [[0.0] * 3] * 2
    assert kiln.ones((2,), dtype=kiln.int32).tolist() == [1, 1]
    assert kiln.full((2, 2), 7).dtype == kiln.int64
    assert kiln.empty(0, 4).shape == (0, 4)
    with pytest.raises(ValueError, match=r"\[empty\] negative dimension"):
        kiln.empty(-1)


@pytest.mark.parametrize("a,b", [
    ("int64", "float32"), ("uint8", "int8"), ("bool", "int32"), ("float16", "bfloat16"),
    ("int32", "int64"), ("float16", "float64"),
])
def test_promotion_matches_torch(a, b):
    torch = require_torch()
    got = kiln.promote_types(getattr(kiln, a), getattr(kiln, b))
    want = torch.promote_types(getattr(torch, a), getattr(torch, b))
    assert repr(got).split(".")[-1] == str(want).split(".")[-1]


def test_wrapped_numbers_do_not_upcast():
    x = kiln.ones(3, dtype=kiln.float16)
    assert (x * 2.5).dtype == kiln.float16
    assert (kiln.ones(3, dtype=kiln.int32) + 1).dtype == kiln.int32
    assert (kiln.ones(3, dtype=kiln.int32) * 1.5).dtype == kiln.float32
    assert (kiln.ones(3, dtype=kiln.float64) * 0.1).tolist() == [0.1] * 3


@pytest.mark.parametrize("shape_a,shape_b", [((3, 1), (1, 4)), ((2, 3, 4), (4,)), ((0, 3), (1, 3)),
                                             ((1,), ()), ((5, 1, 2), (3, 1))])
def test_binary_broadcasting_matches_torch(shape_a, shape_b):
    torch = require_torch()
    ka, ta = both(randn(*shape_a), requires_grad=True)
    kb, tb = both(randn(*shape_b), requires_grad=True)
    for kf, tf in [(lambda x, y: x + y, lambda x, y: x + y), (lambda x, y: x * y - y, None),
                   (lambda x, y: x / (y * y + 1), None)]:
        tf = tf or kf
        kr, tr = kf(ka, kb), tf(ta, tb)
        assert_close(kr, tr)
        kr.sum().backward()
        tr.sum().backward()
        assert_close(ka.grad, ta.grad)
        assert_close(kb.grad, tb.grad)
        ka.grad = None
        kb.grad = None
        ta.grad = None
        tb.grad = None
    del torch


def test_noncontiguous_inputs():
    torch = require_torch()
    k, t = both(randn(4, 6))
    kv, tv = k.transpose(0, 1)._slice(0, 1, None, 2), t.transpose(0, 1)[1::2]
    assert not kv.is_contiguous()
    assert_close(kv * 2 + kv.exp(), tv * 2 + tv.exp())
    assert_close(kv.contiguous(), tv.contiguous())
    del torch


def test_views_share_memory_and_backprop():
    x = kiln.tensor(np.arange(6.0), requires_grad=True)
    y = x.view(2, 3).transpose(0, 1).unsqueeze(0)
    assert y.shape == (1, 3, 2)
    (y * kiln.tensor([[1.0, 2.0]])).sum().backward()
    assert x.grad.tolist() == [1, 1, 1, 2, 2, 2]
    with pytest.raises(RuntimeError, match=r"\[view\] size"):
        x.detach().view(2, 3).transpose(0, 1).view(6)


def test_version_counter_detects_inplace_modification():
    a = kiln.tensor([1.0, 2.0], requires_grad=True)
    b = a * 1
    c = b * b
    b.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        c.sum().backward()


def test_backward_twice_without_retain_graph_fails():
    a = kiln.tensor([1.0, 2.0], requires_grad=True)
    y = (a * a).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert a.grad.tolist() == [4.0, 8.0]
    z = (a * a).sum()
    z.backward()
    with pytest.raises(RuntimeError, match="second time"):
        z.backward()


def test_non_scalar_backward_needs_gradient():
    a = kiln.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="only for scalar outputs"):
        (a * 2).backward()


def test_double_backward():
    x = kiln.tensor([1.0, 2.0], dtype=kiln.float64, requires_grad=True)
    (g,) = kiln.autograd.grad((x * x * x).sum(), x, create_graph=True)
    assert g.tolist() == [3.0, 12.0]
    (gg,) = kiln.autograd.grad(g.sum(), x)
    assert gg.tolist() == [6.0, 12.0]


def test_gradcheck_exp_mul():
    x = kiln.tensor(randn(3, 2), requires_grad=True)
    y = kiln.tensor(randn(2), requires_grad=True)
    assert kiln.autograd.gradcheck(lambda a, b: (a * b).exp() / (b * b + 1), (x, y))


# ---- Note [Overlapping memory]: writes that would read what they already overwrote --------


@pytest.mark.parametrize("write", [
    lambda x: x[1:].copy_(x[:-1]), lambda x: x[:-1].copy_(x[1:]), lambda x: x[1:].add_(x[:-1]),
    lambda x: x[2:].mul_(x[:-2]),
], ids=["copy_ forward", "copy_ backward", "add_", "mul_"])
def test_partial_overlap_is_refused_like_torch(write):
    torch = require_torch()
    with pytest.raises(RuntimeError, match="refer to a single memory location"):
        write(torch.arange(6.0))
    x = kiln.arange(6.0)
    with pytest.raises(RuntimeError, match=r"\[.*\] unsupported operation: some elements"):
        write(x)
    assert x.tolist() == list(range(6))  # nothing was written


def test_writing_into_an_expanded_tensor_is_refused():
    with pytest.raises(RuntimeError, match=r"\[copy_\] .*more than one element"):
        kiln.zeros(1).expand(3).copy_(kiln.ones(3))
    with pytest.raises(RuntimeError, match=r"\[add\] .*more than one element"):
        kiln.zeros(3, 1).expand(3, 4).add_(1)


def test_full_and_disjoint_overlap_are_fine():
    x = kiln.arange(6.0)
    x.copy_(x)
    x.add_(x)
    x[:3].copy_(x[3:])
    assert x.tolist() == [6.0, 8.0, 10.0, 6.0, 8.0, 10.0]
