"""CUDA kernels of the ternary, range, gather/scatter, indexing, join, embedding and sort
families: differential tests against kiln's CPU kernels (and PyTorch where it adds
something) and gradients on the device. Random kernels: test_cuda_random.py.

Every test is marked `cuda` and skips without a GPU. Run on a GPU machine with:
    cd tests && python -m pytest -q test_cuda_index.py
KILN_CUDA_TESTS_ON_CPU=1 runs the same tests with the CPU standing in for the GPU,
which checks the tests themselves on a machine without one.
"""
# Lambdas here run at once inside the loops that define them, so late binding is harmless.
# ruff: noqa: B023

import os

import kiln
import kiln.nn.functional as F
import numpy as np
import pytest
from compare import assert_close, require_torch
from test_cuda import ALL, FLOATS, sample

DEVICE = "cpu" if os.environ.get("KILN_CUDA_TESTS_ON_CPU") else "cuda"
pytestmark = pytest.mark.cuda if DEVICE == "cuda" else []

INTS = [kiln.int64, kiln.int32, kiln.int16, kiln.int8, kiln.uint8]


def atomic_rtol(dtype):
    """Tolerance for sums whose order atomics decide (each step rounds to dtype)."""
    return {kiln.float16: 1e-2, kiln.bfloat16: 5e-2}.get(dtype, 1e-6)


def pair(arr, dtype=None):
    """The same data on the CPU and on the device."""
    h = kiln.tensor(np.asarray(arr))
    if dtype is not None:
        h = h.to(dtype)
    return h, h.to(DEVICE)


def host(t):
    assert t.device.type == DEVICE, t.device
    return t.cpu()


def same(d, h):
    """A device result equals the CPU kernel's exactly (values, shape, dtype)."""
    if isinstance(d, (tuple, list)):
        assert len(d) == len(h)
        for a, b in zip(d, h):
            same(a, b)
        return
    assert d.dtype == h.dtype and tuple(d.shape) == tuple(h.shape), (d, h)
    a, b = host(d).detach(), h.detach()
    if a.dtype in (kiln.float16, kiln.bfloat16):
        a, b = a.float(), b.float()
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def strided(t):
    """The same values with a non-contiguous layout."""
    return t.transpose(0, -1).contiguous().transpose(0, -1)


def close(d, h, rtol=None):
    assert_close(host(d), h, rtol=rtol, atol=rtol)


def both_devices(fn, *arrays):
    """fn applied to CPU tensors and to their device copies."""
    hs = [kiln.tensor(np.asarray(a)) if not isinstance(a, kiln.Tensor) else a for a in arrays]
    return fn(*[h.to(DEVICE) for h in hs]), fn(*hs)


def grads_match(fn, *arrays, rtol=None):
    """Gradients of sum(fn(...) * w) on the device equal those on the CPU."""
    results = []
    for dev in (DEVICE, "cpu"):
        xs = [kiln.tensor(np.asarray(a, dtype=np.float64)).to(dev).requires_grad_() for a in arrays]
        out = fn(*xs)
        w = kiln.tensor(np.linspace(0.5, 2.0, out.numel()).reshape(tuple(out.shape))).to(dev)
        (out * w).sum().backward()
        results.append([x.grad for x in xs])
    for gd, gh in zip(*results):
        close(gd, gh, rtol)


# ---- ternary ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_where_all_dtypes_broadcast_and_strided(dtype):
    cond = sample((4, 1, 5), kiln.bool)
    a, b = sample((3, 5), dtype, 1), sample((4, 3, 1), dtype, 2)
    same(*both_devices(lambda c, x, y: kiln.where(c, x.to(dtype), y.to(dtype)), cond, a, b))
    same(
        *both_devices(
            lambda c, x: kiln.where(c.t(), x.to(dtype).t(), x.to(dtype)[0]),
            sample((6, 6), kiln.bool),
            sample((6, 6), dtype),
        )
    )


def test_where_gradient_and_masked_fill():
    c = sample((5, 4), kiln.bool)
    grads_match(
        lambda x, y: kiln.where(kiln.tensor(c).to(x.device), x, y),
        sample((5, 4), kiln.float64),
        sample((4,), kiln.float64),
    )
    x = sample((5, 4), kiln.float32)
    same(*both_devices(lambda x, m: x.masked_fill(m, -1.5), x, c))


@pytest.mark.parametrize("dtype", [d for d in ALL if d != kiln.bool], ids=str)
def test_clamp(dtype):
    x = sample((6, 7), dtype)
    same(*both_devices(lambda t: kiln.clamp(t.to(dtype), min=-3, max=4), x))
    same(*both_devices(lambda t: kiln.clamp(t.to(dtype).t(), max=2), x))
    lo, hi = sample((7,), dtype, 3), sample((6, 1), dtype, 4)
    same(
        *both_devices(lambda t, l, h: kiln.clamp(t.to(dtype), l.to(dtype), h.to(dtype)), x, lo, hi)
    )


def test_clamp_propagates_nan():
    x = np.array([np.nan, -2.0, 0.5, 7.0])
    same(*both_devices(lambda t: t.clamp(-1, 1), x))
    same(*both_devices(lambda t, lo: t.clamp(min=lo), x, np.array([0.0, np.nan, 0.0, 0.0])))


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_lerp_addcmul_addcdiv(dtype):
    a, b, c = (sample((5, 6), dtype, s) for s in range(3))
    rtol = None if dtype in (kiln.float16, kiln.bfloat16) else 1e-6  # FMA contraction on the GPU
    close(*both_devices(lambda x, y: kiln.lerp(x.to(dtype), y.to(dtype), 0.3), a, b), rtol)
    close(
        *both_devices(
            lambda x, y, w: kiln.lerp(x.to(dtype), y.to(dtype), w.to(dtype).t()),
            a,
            b,
            sample((6, 5), dtype, 9),
        ),
        rtol,
    )
    close(
        *both_devices(
            lambda x, y, z: kiln.addcmul(x.to(dtype), y.to(dtype), z.to(dtype), value=0.5), a, b, c
        ),
        rtol,
    )
    close(
        *both_devices(
            lambda x, y, z: kiln.addcdiv(x.to(dtype), y.to(dtype).t().t(), z.to(dtype), value=-2),
            a,
            b,
            c,
        ),
        rtol,
    )


@pytest.mark.parametrize("dtype", INTS + [kiln.bool], ids=str)
def test_addcmul_integers(dtype):
    a, b, c = (sample((4, 5), dtype, s) for s in range(3))
    same(
        *both_devices(lambda x, y, z: kiln.addcmul(x.to(dtype), y.to(dtype), z.to(dtype)), a, b, c)
    )


# ---- range -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [d for d in ALL if d != kiln.bool], ids=str)
def test_arange_matches_cpu_exactly(dtype):
    for args in [(10,), (-3, 17, 2), (5, -5, -3)]:
        same(kiln.arange(*args, dtype=dtype, device=DEVICE), kiln.arange(*args, dtype=dtype))
    if dtype.is_floating_point:
        for args in [(0, 1, 0.1), (-2.5, 3.7, 0.3), (1e3, 1e3 + 1, 1 / 3)]:
            same(kiln.arange(*args, dtype=dtype, device=DEVICE), kiln.arange(*args, dtype=dtype))
    assert kiln.arange(0, dtype=dtype, device=DEVICE).shape == (0,)


@pytest.mark.parametrize("dtype", ALL, ids=str)
@pytest.mark.parametrize("steps", [0, 1, 2, 7, 100])
def test_linspace_matches_cpu_exactly(dtype, steps):
    same(
        kiln.linspace(-3, 11, steps, dtype=dtype, device=DEVICE),
        kiln.linspace(-3, 11, steps, dtype=dtype),
    )
    if dtype.is_floating_point:
        same(
            kiln.linspace(0.1, -0.7, steps, dtype=dtype, device=DEVICE),
            kiln.linspace(0.1, -0.7, steps, dtype=dtype),
        )


# ---- gather / scatter ------------------------------------------------------------------


def index_array(shape, high, seed=0):
    return np.random.default_rng(seed).integers(0, high, shape)


@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_gather_and_scatter_replace(dtype):
    x = sample((5, 6, 4), dtype)
    for dim in range(3):
        shape = [3, 4, 2]
        idx = index_array(shape, x.shape[dim], dim)
        same(*both_devices(lambda t, i: kiln.gather(t.to(dtype), dim, i), x, idx))
        same(*both_devices(lambda t, i: kiln.gather(strided(t.to(dtype)), dim, strided(i)), x, idx))
    # scatter without duplicate targets (a permutation along dim), so the result is defined
    perm = np.stack([np.random.default_rng(k).permutation(5) for k in range(6 * 4)]).T.reshape(
        5, 6, 4
    )
    src = sample((5, 6, 4), dtype, 5)
    same(*both_devices(lambda t, i, s: kiln.scatter(t.to(dtype), 0, i, s.to(dtype)), x, perm, src))
    same(*both_devices(lambda t, i: t.to(dtype).scatter(0, i, 1), x, perm[:2]))


@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_scatter_add_and_multiply_with_duplicates(dtype):
    x = sample((4, 7), dtype)
    idx = index_array((9, 7), 4)  # many duplicates: atomics
    src = sample((9, 7), dtype, 1)
    rtol = atomic_rtol(dtype)
    d, h = both_devices(
        lambda t, i, s: kiln.scatter_add(t.to(dtype), 0, i, s.to(dtype)), x, idx, src
    )
    close(d, h, rtol) if dtype.is_floating_point else same(d, h)
    d, h = both_devices(
        lambda t, i, s: t.to(dtype).scatter(0, i, s.to(dtype), reduce="multiply"), x, idx[:3], src
    )
    close(d, h, rtol) if dtype.is_floating_point else same(d, h)


def test_index_select_index_add_take_along_dim():
    x = sample((6, 5), kiln.float32)
    i = np.array([4, 0, 0, 3])
    same(*both_devices(lambda t, j: kiln.index_select(t, 1, j[:3]), x, i))
    same(*both_devices(lambda t, j: kiln.index_select(t.t(), 0, j), x, i))
    close(
        *both_devices(
            lambda t, j, s: kiln.index_add(t, 0, j, s, alpha=2),
            x,
            i,
            sample((4, 5), kiln.float32, 3),
        ),
        1e-6,
    )
    same(*both_devices(lambda t, j: kiln.take_along_dim(t, j, 1), x, index_array((6, 3), 5)))
    same(*both_devices(lambda j: kiln.index_select(kiln.zeros(0, 3, device=j.device), 1, j[:0]), i))


def test_gather_scatter_gradients():
    x = sample((5, 4), kiln.float64)
    idx = kiln.tensor(index_array((7, 4), 5))
    grads_match(lambda t: kiln.gather(t, 0, idx.to(t.device)), x)
    grads_match(
        lambda t, s: kiln.scatter_add(t, 0, idx.to(t.device), s), x, sample((7, 4), kiln.float64)
    )
    grads_match(lambda t: kiln.index_select(t, 1, idx[0].to(t.device)[:3] % 4), x)


def test_out_of_range_indices_raise_and_the_device_recovers():
    x = kiln.zeros(4, 3, device=DEVICE)
    bad = kiln.tensor([[0, 4, 1]]).to(DEVICE)
    with pytest.raises(
        IndexError, match=r"\[gather\] index 4 is out of bounds for dimension 0 with size 4"
    ):
        kiln.gather(x, 0, bad)
    with pytest.raises(IndexError, match="scatter"):
        x.scatter_add_(0, bad, kiln.ones(1, 3, device=DEVICE))
    with pytest.raises(IndexError, match="index 7 is out of bounds"):
        x[kiln.tensor([0, 7]).to(DEVICE)]
    with pytest.raises(IndexError, match="index_put_"):
        x[kiln.tensor([-5]).to(DEVICE)] = 1.0
    with pytest.raises(IndexError, match="embedding"):
        F.embedding(kiln.tensor([1, 9]).to(DEVICE), x)
    same(kiln.zeros(4, 3, device=DEVICE) + 1, kiln.ones(4, 3))  # later work runs normally


def test_one_hot_nonzero_masked_select():
    labels = np.array([[3, 0], [1, 3]])
    same(*both_devices(lambda t: F.one_hot(t), labels))
    same(*both_devices(lambda t: F.one_hot(t.t(), 6), labels))
    with pytest.raises(ValueError, match="one_hot"):
        F.one_hot(kiln.tensor([1, 5]).to(DEVICE), 3)
    for dtype in ALL:
        x = sample((4, 5, 3), dtype) * (np.arange(60).reshape(4, 5, 3) % 3 != 0)
        same(*both_devices(lambda t: kiln.nonzero(t.to(dtype)), x))
        same(*both_devices(lambda t: kiln.nonzero(t.to(dtype).transpose(0, 2)), x))
    same(*both_devices(lambda t: kiln.nonzero(t), np.zeros((3, 4))))
    same(*both_devices(lambda t: kiln.nonzero(t), np.zeros((0, 4))))
    same(*both_devices(lambda t: kiln.nonzero(t), np.array(2.0)))
    same(*both_devices(lambda t: kiln.nonzero(t, as_tuple=True), np.eye(3)))
    same(*both_devices(lambda t: kiln.argwhere(t), np.eye(3)))
    x, m = sample((4, 5), kiln.float32), sample((5,), kiln.bool)
    same(*both_devices(lambda t, k: kiln.masked_select(t, k), x, m))


# ---- advanced indexing -----------------------------------------------------------------


@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_getitem_advanced(dtype):
    x = sample((5, 6, 7), dtype)
    i, j = np.array([4, 0, -1, 2]), np.array([[1], [5], [0]])
    keys = [
        lambda t, a, b: t[a],
        lambda t, a, b: t[:, a],
        lambda t, a, b: t[a, :, b],  # separated: the index dims go first
        lambda t, a, b: t[..., b, a[:1]],
        lambda t, a, b: t.transpose(0, 2)[b, 1:4],
        lambda t, a, b: t[a[:0]],
    ]
    for key in keys:
        same(*both_devices(lambda t, a, b: key(t.to(dtype), a, b), x, i, j))


def test_getitem_masks_and_host_indices():
    x = sample((4, 5), kiln.float32)
    m = sample((4, 5), kiln.bool)
    same(*both_devices(lambda t, k: t[k], x, m))
    same(*both_devices(lambda t, k: t[k[:, 0]], x, m))
    same(*both_devices(lambda t, k: t[1:, k[0]], x, m))
    _, dx = pair(x)
    same(dx[[0, 3, 3]], kiln.tensor(x)[[0, 3, 3]])  # Python lists are CPU indices
    same(dx[kiln.tensor(m)], kiln.tensor(x)[kiln.tensor(m)])  # CPU mask of a device tensor
    same(dx[kiln.tensor(2)], kiln.tensor(x)[2])  # 0-d index tensor read on the host
    same(dx[np.array([1, -1])], kiln.tensor(x)[np.array([1, -1])])


@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_setitem_and_index_put(dtype):
    x = sample((5, 4), dtype)
    v = sample((3, 4), dtype, 7)

    def put(t, vals):
        t = t.to(dtype).clone()
        t[kiln.tensor([4, 0, 2]).to(t.device)] = vals.to(dtype)
        t[1, kiln.tensor([3]).to(t.device)] = 1
        t[:, kiln.tensor([True, False, True, False]).to(t.device)] = 0
        return t

    same(*both_devices(put, x, v))
    # a non-contiguous target and broadcast (stride 0) values
    same(
        *both_devices(
            lambda t, vals: (
                t.to(dtype)
                .t()
                .index_put((kiln.tensor([1, 3]).to(t.device),), vals.to(dtype)[0, :1])
            ),
            x,
            v,
        )
    )


@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_index_put_accumulate_with_duplicates(dtype):
    x = sample((6, 3), dtype)
    idx = np.array([1, 1, 5, 1, 0, 5, 5, 5])
    v = sample((8, 3), dtype, 2)
    d, h = both_devices(
        lambda t, i, w: t.to(dtype).index_put_((i,), w.to(dtype), accumulate=True), x, idx, v
    )
    close(d, h, atomic_rtol(dtype)) if dtype.is_floating_point else same(d, h)
    # broadcast values and two index tensors
    d, h = both_devices(
        lambda t, i: t.to(dtype).index_put_(
            (i, i % 3), kiln.ones((), dtype=dtype, device=t.device), accumulate=True
        ),
        x,
        idx,
    )
    close(d, h, atomic_rtol(dtype)) if dtype.is_floating_point else same(d, h)


def test_indexing_gradients():
    x = sample((5, 4), kiln.float64)
    i = kiln.tensor([3, 3, 0, -1])
    grads_match(lambda t: t[i.to(t.device)], x)
    grads_match(lambda t: t[i.to(t.device), 1:], x)
    grads_match(lambda t: t[kiln.tensor(x > 0).to(t.device)], x)
    grads_match(
        lambda t, v: t.index_put((i.to(t.device),), v, accumulate=True),
        x,
        sample((4, 4), kiln.float64),
    )

    def setitem(t, v):
        t = t * 1
        t[i.to(t.device)[:2]] = v
        return t

    grads_match(setitem, x, sample((4,), kiln.float64))
    torch = require_torch()
    tx = torch.tensor(x, requires_grad=True)
    tx[torch.tensor([3, 3, 0, -1])].sum().backward()
    kx = kiln.tensor(x).to(DEVICE).requires_grad_()
    kx[i.to(DEVICE)].sum().backward()
    assert_close(host(kx.grad), tx.grad)


# ---- join ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_cat_stack(dtype):
    a, b, c = sample((2, 3, 4), dtype), sample((2, 5, 4), dtype, 1), sample((2, 0, 4), dtype)
    for dim in (1, -2):
        same(
            *both_devices(
                lambda x, y, z: kiln.cat([x.to(dtype), y.to(dtype), z.to(dtype)], dim), a, b, c
            )
        )
    same(
        *both_devices(
            lambda x, y: kiln.cat([x.to(dtype).transpose(0, 2), y.to(dtype).transpose(0, 2)], 1),
            a,
            b,
        )
    )
    same(*both_devices(lambda x: kiln.cat([x.to(dtype), x.to(dtype)[:, :, :1]], 2), a))
    same(*both_devices(lambda x: kiln.cat([x.to(dtype), kiln.zeros(0, device=x.device)]), a))
    same(*both_devices(lambda x: kiln.stack([x.to(dtype)[0], x.to(dtype)[1]], 1), a))


def test_cat_promotes_and_differentiates():
    a, b = sample((2, 3), kiln.int32), sample((4, 3), kiln.float32)
    same(*both_devices(lambda x, y: kiln.cat([x.to(kiln.int32), y]), a, b))
    grads_match(
        lambda x, y: kiln.cat([x, y.t()], 0),
        sample((2, 3), kiln.float64),
        sample((3, 5), kiln.float64),
    )


@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_flip_roll_tril_triu(dtype):
    x = sample((3, 4, 5), dtype)
    for fn in [
        lambda t: kiln.flip(t, [0, 2]),
        lambda t: kiln.flip(t.transpose(1, 2), [1]),
        lambda t: kiln.roll(t, 2),
        lambda t: kiln.roll(t, [1, -7], [0, 2]),
        lambda t: kiln.roll(t.transpose(0, 1), 3, 0),
        lambda t: kiln.tril(t),
        lambda t: kiln.triu(t, 2),
        lambda t: kiln.tril(t.transpose(1, 2), -1),
        lambda t: kiln.triu(t[:, :0]),
    ]:
        same(*both_devices(lambda t: fn(t.to(dtype)), x))

    def in_place(t):
        t = t.to(dtype).clone()
        t.tril_(1)
        t.transpose(1, 2).triu_()
        return t

    same(*both_devices(in_place, x))
    grads_match(
        lambda t: kiln.flip(kiln.roll(kiln.tril(t), 1, 1), [0]), sample((4, 4), kiln.float64)
    )


# ---- embedding -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_embedding_forward_and_deterministic_backward(dtype):
    w = sample((10, 6), dtype)
    idx = np.array([[1, 9, 1, 1], [0, 3, 9, 1]])
    same(*both_devices(lambda t, i: F.embedding(i, t.to(dtype)), w, idx))
    same(*both_devices(lambda t, i: F.embedding(i.int(), t.to(dtype).t().contiguous().t()), w, idx))
    g = sample((2, 4, 6), dtype, 3)

    def weight_grad(t, i, gr, pad):
        t = t.to(dtype).detach().clone().requires_grad_()
        F.embedding(i, t, padding_idx=pad).backward(gr.to(dtype))
        return t.grad

    for pad in (None, 1):
        # same summation order as the CPU kernel: bit-identical, also in float16/bfloat16
        same(*both_devices(lambda t, i, gr: weight_grad(t, i, gr, pad), w, idx, g))


def test_embedding_gradient_through_module():
    kiln.manual_seed(0)
    emb = kiln.nn.Embedding(50, 8, padding_idx=0)
    idx = index_array((16, 12), 50)
    results = []
    for dev in (DEVICE, "cpu"):
        m = emb.to(dev) if dev == DEVICE else emb.cpu()
        m.zero_grad()
        out = m(kiln.tensor(idx).to(dev))
        (out * kiln.linspace(-1, 2, 8, device=dev)).sum().backward()
        results.append(m.weight.grad.clone())  # emb.cpu() next moves the module
    same(results[0], results[1])
    assert (results[0][0] == 0).all()


# ---- sort / topk / unique --------------------------------------------------------------


@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_sort_stable_matches_cpu(dtype):
    x = sample((4, 33), dtype) if dtype == kiln.bool else sample((4, 33), dtype) % 5  # many ties
    for dim, desc in [(1, False), (1, True), (0, False), (-1, True)]:
        same(*both_devices(lambda t: kiln.sort(t.to(dtype), dim=dim, descending=desc), x))
        same(*both_devices(lambda t: kiln.argsort(t.to(dtype).t(), dim=dim, descending=desc), x))
    same(*both_devices(lambda t: kiln.sort(t.to(dtype)[0, 0]), x))  # 0-d
    same(*both_devices(lambda t: kiln.sort(t.to(dtype)[:, :0]), x))


def test_sort_nan_signed_zero_and_large_rows():
    x = np.array([[3.0, np.nan, -0.0, 0.0, -np.inf, np.nan, 1.0, np.inf, -2.0]])
    for dtype in FLOATS:
        for desc in (False, True):
            same(*both_devices(lambda t: kiln.sort(t.to(dtype), descending=desc), x))
    big = np.random.default_rng(0).integers(0, 1000, (3, 100_000))
    same(*both_devices(lambda t: kiln.sort(t, dim=1), big))
    same(*both_devices(lambda t: kiln.sort(t.flatten(), descending=True), big))
    torch = require_torch()
    v, i = kiln.sort(kiln.tensor(big).to(DEVICE).float(), dim=0, stable=True)
    tv, ti = torch.sort(torch.tensor(big).float(), dim=0, stable=True)
    assert_close(host(v), tv)
    assert_close(host(i), ti)


@pytest.mark.parametrize(
    "dtype", [kiln.float32, kiln.float64, kiln.float16, kiln.int64, kiln.int8, kiln.uint8], ids=str
)
def test_topk(dtype):
    x = sample((5, 40), dtype)
    for k, dim, largest in [
        (3, 1, True),
        (7, 1, False),
        (2, 0, True),
        (0, 1, True),
        (40, -1, False),
    ]:
        same(*both_devices(lambda t: kiln.topk(t.to(dtype), k, dim=dim, largest=largest), x))
    grads_match(lambda t: kiln.topk(t, 3, dim=1).values, sample((4, 9), kiln.float64))
    grads_match(lambda t: kiln.sort(t, dim=0, descending=True).values, sample((4, 9), kiln.float64))


@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_unique(dtype):
    x = sample((6, 7), dtype) % 4 if dtype != kiln.bool else sample((6, 7), dtype)
    for inv, cnt in [(False, False), (True, False), (False, True), (True, True)]:
        d, h = both_devices(
            lambda t: kiln.unique(t.to(dtype).t(), return_inverse=inv, return_counts=cnt), x
        )
        same(d, h)
    same(
        *both_devices(
            lambda t: kiln.unique(t, return_inverse=True, return_counts=True), np.zeros((0,))
        )
    )
    nans = np.array([np.nan, 1.0, np.nan, -0.0, 0.0, 1.0])
    same(*both_devices(lambda t: kiln.unique(t, return_inverse=True, return_counts=True), nans))
