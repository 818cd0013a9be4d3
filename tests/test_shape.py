"""Shape and view ops (flatten, split, chunk, unbind, t, T, mT, movedim, ...) against PyTorch."""

import numpy as np
import pytest

import kiln
from compare import assert_close, both, require_torch

torch = require_torch()


def _pair(shape, dtype=kiln.float64, layout="contiguous", seed=0):
    arr = np.random.default_rng(seed).standard_normal(shape)
    k, t = both(arr, dtype=dtype)
    if layout == "transposed" and len(shape) >= 2:
        k, t = both(np.ascontiguousarray(np.swapaxes(arr, 0, -1)), dtype=dtype)
        k, t = k.transpose(0, -1), t.transpose(0, -1)
    elif layout == "expanded":
        k, t = both(arr[:1], dtype=dtype)
        k, t = k.expand(*shape), t.expand(*shape)
    return k, t


def _check_views(kout, tout, kin):
    """Same values as torch, and every piece shares kin's memory."""
    assert_close(kout, tout)
    for o in kout if isinstance(kout, (tuple, list)) else [kout]:
        assert o._is_view() or o is kin


# Each case: (name, kiln fn, torch fn, input shape).
CASES = [
    ("flatten", lambda x: x.flatten(), lambda x: x.flatten(), (2, 3, 4)),
    ("flatten_1_2", lambda x: x.flatten(1, 2), lambda x: x.flatten(1, 2), (2, 3, 4)),
    ("flatten_neg", lambda x: kiln.flatten(x, -2), lambda x: torch.flatten(x, -2), (2, 3, 4)),
    ("flatten_same", lambda x: x.flatten(1, 1), lambda x: x.flatten(1, 1), (2, 3, 4)),
    ("flatten_0d", lambda x: x.flatten(), lambda x: x.flatten(), ()),
    ("unflatten", lambda x: x.unflatten(1, (3, 1)), lambda x: x.unflatten(1, (3, 1)), (2, 3, 4)),
    ("unflatten_neg", lambda x: kiln.unflatten(x, -1, (2, -1)),
     lambda x: torch.unflatten(x, -1, (2, -1)), (2, 3, 4)),
    ("narrow", lambda x: x.narrow(1, 1, 2), lambda x: x.narrow(1, 1, 2), (2, 3, 4)),
    ("narrow_neg", lambda x: kiln.narrow(x, -1, -3, 2), lambda x: torch.narrow(x, -1, -3, 2),
     (2, 3, 4)),
    ("narrow_empty", lambda x: x.narrow(0, 2, 0), lambda x: x.narrow(0, 2, 0), (2, 3, 4)),
    ("split", lambda x: x.split(2, 2), lambda x: x.split(2, 2), (2, 3, 5)),
    ("split_sections", lambda x: kiln.split(x, [1, 0, 2], 1),
     lambda x: torch.split(x, [1, 0, 2], 1), (2, 3, 4)),
    ("split_big", lambda x: x.split(10), lambda x: x.split(10), (2, 3)),
    ("split_with_sizes", lambda x: x.split_with_sizes([3, 1], -1),
     lambda x: x.split_with_sizes([3, 1], -1), (2, 3, 4)),
    ("chunk", lambda x: x.chunk(3, 2), lambda x: x.chunk(3, 2), (2, 3, 5)),
    ("chunk_uneven", lambda x: kiln.chunk(x, 4, 0), lambda x: torch.chunk(x, 4, 0), (6, 2)),
    ("chunk_more", lambda x: x.chunk(5, 1), lambda x: x.chunk(5, 1), (2, 3)),
    ("unbind", lambda x: x.unbind(), lambda x: x.unbind(), (3, 2)),
    ("unbind_dim", lambda x: kiln.unbind(x, -1), lambda x: torch.unbind(x, -1), (2, 3, 4)),
    ("t2", lambda x: x.t(), lambda x: x.t(), (2, 3)),
    ("t1", lambda x: kiln.t(x), lambda x: torch.t(x), (3,)),
    ("t0", lambda x: x.t(), lambda x: x.t(), ()),
    ("T", lambda x: x.T, lambda x: x.permute(*range(x.ndim - 1, -1, -1)), (2, 3, 4)),
    ("T2", lambda x: x.T, lambda x: x.T, (2, 3)),
    ("mT", lambda x: x.mT, lambda x: x.mT, (2, 3, 4)),
    ("movedim", lambda x: x.movedim(0, -1), lambda x: x.movedim(0, -1), (2, 3, 4)),
    ("movedim_tuple", lambda x: kiln.movedim(x, (0, 1), (2, 0)),
     lambda x: torch.movedim(x, (0, 1), (2, 0)), (2, 3, 4, 5)),
    ("moveaxis", lambda x: x.moveaxis(-1, 1), lambda x: x.moveaxis(-1, 1), (2, 3, 4)),
    ("swapaxes", lambda x: x.swapaxes(0, 2), lambda x: x.swapaxes(0, 2), (2, 3, 4)),
    ("swapdims", lambda x: kiln.swapdims(x, 1, -1), lambda x: torch.swapdims(x, 1, -1), (2, 3, 4)),
    ("squeeze", lambda x: kiln.squeeze(x), lambda x: torch.squeeze(x), (1, 3, 1)),
    ("squeeze_dim", lambda x: x.squeeze(-1), lambda x: x.squeeze(-1), (1, 3, 1)),
    ("squeeze_tuple", lambda x: kiln.squeeze(x, (0, 1)), lambda x: torch.squeeze(x, (0, 1)),
     (1, 3, 1)),
    ("expand_as", lambda x: x.expand_as(kiln.zeros(2, 3, 4)),
     lambda x: x.expand_as(torch.zeros(2, 3, 4)), (3, 1)),
    ("view_as", lambda x: x.view_as(kiln.zeros(6, 4)), lambda x: x.view_as(torch.zeros(6, 4)),
     (2, 3, 4)),
    ("reshape_as", lambda x: x.reshape_as(kiln.zeros(4, 6)),
     lambda x: x.reshape_as(torch.zeros(4, 6)), (2, 3, 4)),
]


@pytest.mark.parametrize("name,kfn,tfn,shape", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", [kiln.float32, kiln.float64, kiln.int64, kiln.bool], ids=repr)
def test_shape_ops_match_torch(name, kfn, tfn, shape, dtype):
    k, t = _pair(shape, dtype)
    _check_views(kfn(k), tfn(t), k)


@pytest.mark.parametrize("layout", ["transposed", "expanded"])
@pytest.mark.parametrize("name,kfn,tfn,shape", CASES, ids=[c[0] for c in CASES])
def test_shape_ops_noncontiguous(name, kfn, tfn, shape, layout):
    if len(shape) < 2 or name in ("view_as",):
        pytest.skip("needs a 2-d input that can be viewed")
    k, t = _pair(shape, layout=layout)
    assert_close(kfn(k), tfn(t))


def test_flatten_of_noncontiguous_copies_only_when_needed():
    k = kiln.zeros(3, 4).t()
    f = k.flatten()
    assert f.shape == (12,) and f.is_contiguous()
    assert not f._is_view() or f._base_ptr() is not k._base_ptr()
    g = kiln.zeros(2, 3, 4)
    assert g.flatten(1)._is_view()


def test_views_share_memory():
    k = kiln.zeros(4, 6)
    k.narrow(1, 2, 2).fill_(1.0)
    k.split(2)[1].unbind(1)[0].fill_(2.0)
    k.chunk(3, 1)[2].t().mT.fill_(3.0)
    k.unflatten(1, (2, 3))[:, 0, 0].fill_(4.0)
    t = torch.zeros(4, 6)
    t.narrow(1, 2, 2).fill_(1.0)
    t.split(2)[1].unbind(1)[0].fill_(2.0)
    t.chunk(3, 1)[2].t().mT.fill_(3.0)
    t.unflatten(1, (2, 3))[:, 0, 0].fill_(4.0)
    assert_close(k, t)


@pytest.mark.parametrize("name,kfn,tfn,shape", CASES, ids=[c[0] for c in CASES])
def test_shape_op_gradients_match_torch(name, kfn, tfn, shape):
    kx, tx = _pair(shape)
    kx.requires_grad_(True)
    tx.requires_grad_(True)
    kout, tout = kfn(kx), tfn(tx)
    kout = kout if isinstance(kout, (tuple, list)) else [kout]
    tout = tout if isinstance(tout, (tuple, list)) else [tout]
    rng = np.random.default_rng(1)
    kloss, tloss = None, None
    for ko, to in zip(kout, tout):
        w = rng.standard_normal(tuple(to.shape))
        kl, tl = (ko * kiln.tensor(w)).sum(), (to * torch.tensor(w)).sum()
        kloss = kl if kloss is None else kloss + kl
        tloss = tl if tloss is None else tloss + tl
    kloss.backward()
    tloss.backward()
    assert_close(kx.grad, tx.grad)


@pytest.mark.parametrize("name,kfn,tfn,shape", CASES[::3], ids=[c[0] for c in CASES[::3]])
def test_shape_op_gradcheck(name, kfn, tfn, shape):
    x = kiln.tensor(np.random.default_rng(2).standard_normal(shape), requires_grad=True)
    assert kiln.autograd.gradcheck(lambda a: tuple(kfn(a)) if isinstance(kfn(a), (tuple, list))
                                   else kfn(a), (x,))


def test_split_and_chunk_edge_cases_match_torch():
    for shape, args in [((0, 3), (2,)), ((5,), (5,)), ((5,), (1,))]:
        k, t = _pair(shape)
        assert_close(k.split(*args), t.split(*args))
    k, t = _pair((0, 3))
    assert_close(k.chunk(3), t.chunk(3))
    assert_close(k.split(0), t.split(0))
    assert isinstance(k.split(1), tuple) and isinstance(kiln.unbind(k, 1), tuple)


def test_split_is_one_node_whose_backward_concatenates():
    """All pieces share one SplitWithSizesBackward0 node; unused pieces get zeros; the
    backward is differentiable (double backward)."""
    torch = require_torch()
    w = np.random.default_rng(3).standard_normal((6, 4))
    grads = []
    for lib in (kiln, torch):
        x = lib.tensor(w.copy(), requires_grad=True)
        pieces = x.split([1, 3, 2], 0)
        loss = (pieces[0] ** 3).sum() + (pieces[2] * 2).sum()  # pieces[1] unused
        (g,) = lib.autograd.grad(loss, x, create_graph=True)
        (gg,) = lib.autograd.grad(g.sum(), x)
        grads.append((g.detach(), gg))
        if lib is kiln:
            assert pieces[0].grad_fn is pieces[1].grad_fn is pieces[2].grad_fn
            assert pieces[0].grad_fn.name() == "SplitWithSizesBackward0"
    assert_close(grads[0][0], grads[1][0])
    assert_close(grads[0][1], grads[1][1])


def test_shape_op_errors():
    k = kiln.zeros(2, 3, 4)
    with pytest.raises(ValueError, match=r"\[flatten\] start_dim"):
        k.flatten(2, 1)
    with pytest.raises(IndexError, match=r"\[flatten\] dimension out of range"):
        k.flatten(0, 3)
    with pytest.raises(ValueError, match=r"\[unflatten\]"):
        k.unflatten(1, (2, 2))
    with pytest.raises(ValueError, match=r"\[narrow\]"):
        k.narrow(1, 2, 2)
    with pytest.raises(IndexError, match=r"\[narrow\] start"):
        k.narrow(1, 4, 0)
    with pytest.raises(ValueError, match=r"\[split\]"):
        k.split([1, 1], 1)
    with pytest.raises(ValueError, match=r"\[split\]"):
        k.split(0, 1)
    with pytest.raises(ValueError, match=r"\[chunk\]"):
        k.chunk(0)
    with pytest.raises(ValueError, match=r"\[t\] expects a tensor with <= 2 dimensions"):
        k.t()
    with pytest.raises(ValueError, match=r"\[mT\]"):
        kiln.zeros(3).mT
    with pytest.raises(ValueError, match=r"\[movedim\]"):
        k.movedim((0, 1), (1,))
    with pytest.raises(ValueError, match=r"\[movedim\] repeated dim"):
        k.movedim((0, 0), (1, 2))
    with pytest.raises(IndexError, match=r"\[unbind\]"):
        kiln.tensor(1.0).unbind()
    with pytest.raises(ValueError, match=r"\[expand\]"):
        kiln.zeros(2, 3).expand_as(kiln.zeros(3, 3))


def test_iterating_rows_gives_views():
    k = kiln.zeros(3, 2)
    for i, row in enumerate(k):
        row.fill_(float(i))
    assert k.tolist() == [[0, 0], [1, 1], [2, 2]]
