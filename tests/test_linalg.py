"""Matrix products: matmul/@, mm, bmm, addmm, baddbmm, linear, outer, dot, einsum."""

import kiln
import numpy as np
import pytest
from compare import assert_close, both, randn, require_torch, torch_dtype
from hypothesis import given, settings
from hypothesis import strategies as st
from kiln.autograd import gradcheck

FLOATS = [kiln.float32, kiln.float64]


def _rand(*shape, seed=0):
    return randn(*shape, rng=np.random.default_rng(seed))


def _check_fwd_bwd(kfn, tfn, shapes, dtype, seed=0):
    """Forward values and gradients of every input match torch."""
    torch = require_torch()
    pairs = [both(_rand(*s, seed=seed + i), requires_grad=True, dtype=dtype)
             for i, s in enumerate(shapes)]
    ks, ts = [p[0] for p in pairs], [p[1] for p in pairs]
    kout, tout = kfn(*ks), tfn(*ts)
    assert_close(kout, tout)
    w = _rand(*tout.shape, seed=99)
    kw, tw = kiln.tensor(w).to(kout.dtype), torch.tensor(w).to(tout.dtype)
    (kout * kw).sum().backward()
    (tout * tw).sum().backward()
    for k, t in zip(ks, ts):
        assert_close(k.grad, t.grad)


MATMUL_SHAPES = [
    ((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)), ((2, 2, 3), (3, 4)),
    ((2, 2, 3), (3,)), ((3,), (2, 3, 4)), ((2, 3), (5, 3, 4)), ((4, 1, 2, 3), (5, 3, 2)),
    ((1, 2, 3), (4, 3, 5)), ((2, 4, 3), (2, 3, 5)), ((0, 3), (3, 4)), ((2, 0), (0, 3)),
    ((2, 3), (3, 0)), ((1, 1), (1, 1)), ((0, 2, 3), (3, 4)), ((2, 1, 3), (2, 3, 1)),
    ((0,), (0,)), ((3, 2, 0), (0, 4)), ((1,), (1, 1)),
]


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=[f"{a}@{b}" for a, b in MATMUL_SHAPES])
def test_matmul_matches_torch(sa, sb, dtype):
    torch = require_torch()
    _check_fwd_bwd(kiln.matmul, torch.matmul, [sa, sb], dtype)
    _check_fwd_bwd(lambda a, b: a @ b, lambda a, b: a @ b, [sa, sb], dtype)


@settings(max_examples=40, deadline=None)
@given(batch=st.lists(st.integers(2, 3), max_size=3), ndim_a=st.integers(0, 3),
       ndim_b=st.integers(0, 3), ones_a=st.lists(st.booleans(), min_size=3, max_size=3),
       ones_b=st.lists(st.booleans(), min_size=3, max_size=3), m=st.integers(0, 3),
       k=st.integers(0, 3), n=st.integers(0, 3))
def test_matmul_batch_broadcasting_property(batch, ndim_a, ndim_b, ones_a, ones_b, m, k, n):
    """Batch dims taken as suffixes of one shape, some set to 1, broadcast as in NumPy."""
    def batch_dims(ndim, ones):
        dims = batch[len(batch) - min(ndim, len(batch)):]
        return [1 if one else size for size, one in zip(dims, ones)]

    a = _rand(*batch_dims(ndim_a, ones_a), m, k)
    b = _rand(*batch_dims(ndim_b, ones_b), k, n, seed=1)
    np.testing.assert_allclose((kiln.tensor(a) @ kiln.tensor(b)).numpy(), a @ b, rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
def test_matmul_noncontiguous_operands(dtype):
    """Transposed, step-sliced and expanded operands, with and without a BLAS-readable layout."""
    torch = require_torch()
    ka, ta = both(_rand(5, 4), dtype=dtype)
    kb, tb = both(_rand(6, 5, seed=1), dtype=dtype)
    cases = [
        (lambda a, b: a.transpose(0, 1) @ b.transpose(0, 1)),                 # both transposed
        (lambda a, b: a._slice(0, 0, None, 2) @ b._slice(0, 1, 5, 1)),         # rows with steps
        (lambda a, b: a._slice(1, 0, None, 2).transpose(0, 1) @
         b._slice(0, 0, 5, 1)._slice(1, 0, None, 2)),                          # no unit stride
        (lambda a, b: a.unsqueeze(0).expand(3, 5, 4) @ b._slice(0, 0, 4, 1)),   # expanded batch
        (lambda a, b: a._slice(1, 0, 1, 1).expand(5, 5) @ b._slice(0, 0, 5, 1)),  # stride-0 cols
    ]
    tcases = [
        (lambda a, b: a.T @ b.T),
        (lambda a, b: a[::2] @ b[1:5]),
        (lambda a, b: a[:, ::2].T @ b[:5, ::2]),
        (lambda a, b: a.unsqueeze(0).expand(3, 5, 4) @ b[:4]),
        (lambda a, b: a[:, :1].expand(5, 5) @ b[:5]),
    ]
    for kf, tf in zip(cases, tcases):
        assert_close(kf(ka, kb), tf(ta, tb))
    del torch


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
def test_noncontiguous_gradients(dtype):
    torch = require_torch()
    _check_fwd_bwd(lambda a, b: a.transpose(0, 1) @ b._slice(1, 0, None, 2),
                   lambda a, b: a.T @ b[:, ::2], [(4, 3), (4, 6)], dtype)
    _check_fwd_bwd(lambda a, b: a.permute(2, 0, 1) @ b.transpose(1, 2),
                   lambda a, b: a.permute(2, 0, 1) @ b.transpose(1, 2), [(3, 4, 2), (2, 5, 4)],
                   dtype)
    del torch


# Batch dims whose strides don't merge: matmul loops over the outer ones (up to 64 kernel
# calls of at least 2^24 multiply-adds) instead of copying; below or beyond that, it copies.
# (N, L, H, D) projections viewed as attention heads (N, H, L, D) are the case this is for.
LOOPED_BATCH_VIEWS = [  # 2 calls of 3 x (256x128 @ 128x256), then 6 calls of the same
    ("heads", lambda a, b: a.reshape(2, 256, 3, 128).transpose(1, 2) @
     b.reshape(2, 256, 3, 128).permute(0, 2, 3, 1), [(2, 256, 384), (2, 256, 384)]),
    ("three-levels", lambda a, b: a.permute(1, 0, 2, 3, 4)[:, :, ::2] @ b,
     [(3, 2, 6, 256, 128), (3, 128, 256)]),
]
BATCH_VIEWS = [  # copied: calls too small
    # name, kiln/torch function of (a, b), shapes of a and b
    ("heads", lambda a, b: a.reshape(2, 5, 3, 4).transpose(1, 2) @
     b.reshape(2, 6, 3, 4).permute(0, 2, 3, 1), [(2, 5, 12), (2, 6, 12)]),
    ("heads-by-values", lambda a, b: a @ b.reshape(2, 5, 3, 4).transpose(1, 2),
     [(2, 3, 6, 5), (2, 5, 12)]),
    ("three-levels", lambda a, b: a.permute(1, 0, 2, 3, 4)[:, :, ::2] @ b,
     [(3, 2, 6, 4, 5), (3, 5, 2)]),
    ("broadcast-middle", lambda a, b: a.transpose(0, 1) @ b.unsqueeze(1),
     [(4, 3, 2, 5), (3, 5, 6)]),
    ("many-outer", lambda a, b: a.transpose(0, 1) @ b,
     [(2, 70, 3, 4), (70, 1, 4, 5)]),  # and too many
    ("size-one-between", lambda a, b: a.transpose(0, 2) @ b, [(3, 1, 2, 2, 4), (1, 4, 5)]),
    ("empty-batch", lambda a, b: a.transpose(0, 1) @ b, [(2, 0, 3, 4), (0, 2, 4, 5)]),
]


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("fn,shapes", [c[1:] for c in BATCH_VIEWS], ids=[c[0] for c in BATCH_VIEWS])
def test_matmul_unmergeable_batch_views(fn, shapes, dtype):
    _check_fwd_bwd(fn, fn, shapes, dtype)


@pytest.mark.parametrize("fn,shapes", [c[1:] for c in LOOPED_BATCH_VIEWS],
                         ids=[c[0] for c in LOOPED_BATCH_VIEWS])
def test_matmul_looped_batch_views(fn, shapes):
    _check_fwd_bwd(fn, fn, shapes, kiln.float64)  # float64: sums of 256 products, exact


def test_matmul_unmergeable_batch_views_gradcheck():
    a = kiln.tensor(_rand(2, 5, 12)).requires_grad_(True)
    b = kiln.tensor(_rand(2, 6, 12, seed=1)).requires_grad_(True)
    assert gradcheck(lambda a, b: a.reshape(2, 5, 3, 4).transpose(1, 2) @
                     b.reshape(2, 6, 3, 4).permute(0, 2, 3, 1), [a, b])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "int64", "int32", "int8", "uint8"])
def test_matmul_other_dtypes(dtype):
    torch = require_torch()
    kd = getattr(kiln, dtype)
    rng = np.random.default_rng(0)
    if dtype.startswith(("int", "uint")):
        a, b = rng.integers(0, 5, (2, 3, 4)), rng.integers(0, 5, (4, 5))
    else:
        a, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5))
    ka, ta = both(a, dtype=kd)
    kb, tb = both(b, dtype=kd)
    assert_close(ka @ kb, ta @ tb, rtol=2e-2, atol=2e-2)
    assert_close(kiln.bmm(ka, kb.unsqueeze(0).expand(2, 4, 5)),
                 torch.bmm(ta, tb.unsqueeze(0).expand(2, 4, 5)), rtol=2e-2, atol=2e-2)
    assert_close(ka.transpose(1, 2)._slice(1, 0, None, 2) @ ka._slice(2, 0, None, 2),
                 ta.transpose(1, 2)[:, ::2] @ ta[:, :, ::2], rtol=2e-2, atol=2e-2)
    assert torch_dtype(kd) == (ta @ tb).dtype


@pytest.mark.parametrize("dtype", [kiln.float16, kiln.bfloat16], ids=["f16", "bf16"])
def test_half_precision_gradients(dtype):
    torch = require_torch()
    ka, ta = both(_rand(2, 3, 4), requires_grad=True, dtype=dtype)
    kb, tb = both(_rand(4, 5, seed=1), requires_grad=True, dtype=dtype)
    (ka @ kb).sum().backward()
    (ta @ tb).sum().backward()
    assert_close(ka.grad, ta.grad)
    assert_close(kb.grad, tb.grad)


def test_big_and_many_small_products():
    """Threaded OpenBLAS (one large GEMM) and batches spread over threads (many small ones)."""
    torch = require_torch()
    ka, ta = both(_rand(300, 200), dtype=kiln.float32)
    kb, tb = both(_rand(200, 310, seed=1), dtype=kiln.float32)
    assert_close(ka @ kb, ta @ tb, rtol=1e-4, atol=1e-4)
    kx, tx = both(_rand(257, 8, 9))
    ky, ty = both(_rand(257, 9, 7, seed=1))
    assert_close(kiln.bmm(kx, ky), torch.bmm(tx, ty))
    assert_close(kiln.bmm(kx.transpose(1, 2)._slice(1, 0, 8, 1), kx),
                 torch.bmm(tx.transpose(1, 2)[:, :8], tx))


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
def test_mm_bmm(dtype):
    torch = require_torch()
    _check_fwd_bwd(kiln.mm, torch.mm, [(3, 4), (4, 2)], dtype)
    _check_fwd_bwd(lambda a, b: a.mm(b), lambda a, b: a.mm(b), [(1, 4), (4, 1)], dtype)
    _check_fwd_bwd(kiln.bmm, torch.bmm, [(2, 3, 4), (2, 4, 5)], dtype)
    _check_fwd_bwd(lambda a, b: a.bmm(b), lambda a, b: a.bmm(b), [(0, 3, 4), (0, 4, 5)], dtype)
    _check_fwd_bwd(kiln.bmm, torch.bmm, [(2, 3, 0), (2, 0, 5)], dtype)


ADDMM_CASES = [((2, 4), 1, 1), ((4,), 0.5, 2), ((1, 4), 1, -1), ((), 2, 1), ((2, 1), 0, 1.5)]


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("ishape,beta,alpha", ADDMM_CASES)
def test_addmm(ishape, beta, alpha, dtype):
    torch = require_torch()
    _check_fwd_bwd(lambda i, a, b: kiln.addmm(i, a, b, beta=beta, alpha=alpha),
                   lambda i, a, b: torch.addmm(i, a, b, beta=beta, alpha=alpha),
                   [ishape, (2, 3), (3, 4)], dtype)
    _check_fwd_bwd(lambda i, a, b: i.addmm(a.transpose(0, 1), b, beta=beta, alpha=alpha),
                   lambda i, a, b: i.addmm(a.T, b, beta=beta, alpha=alpha),
                   [ishape, (3, 2), (3, 4)], dtype)


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("ishape,beta,alpha", [((2, 3, 5), 1, 1), ((5,), 0.5, 2), ((3, 1), 0, 1),
                                               ((1, 1, 5), -1, 0.25)])
def test_baddbmm(ishape, beta, alpha, dtype):
    torch = require_torch()
    _check_fwd_bwd(lambda i, a, b: kiln.baddbmm(i, a, b, beta=beta, alpha=alpha),
                   lambda i, a, b: torch.baddbmm(i, a, b, beta=beta, alpha=alpha),
                   [ishape, (2, 3, 4), (2, 4, 5)], dtype)
    _check_fwd_bwd(lambda i, a, b: i.baddbmm(a, b, beta=beta, alpha=alpha),
                   lambda i, a, b: i.baddbmm(a, b, beta=beta, alpha=alpha),
                   [ishape, (2, 3, 4), (2, 4, 5)], dtype)


def test_beta_zero_ignores_nan_input():
    torch = require_torch()
    nan = np.full((2, 2), np.nan)
    ki, ti = both(nan)
    ka, ta = both(_rand(2, 3))
    kb, tb = both(_rand(3, 2))
    assert_close(kiln.addmm(ki, ka, kb, beta=0), torch.addmm(ti, ta, tb, beta=0))


def test_integer_addmm():
    torch = require_torch()
    rng = np.random.default_rng(0)
    ki, ti = both(rng.integers(-3, 3, (2, 4)))
    ka, ta = both(rng.integers(-3, 3, (2, 3)))
    kb, tb = both(rng.integers(-3, 3, (3, 4)))
    assert_close(kiln.addmm(ki, ka, kb, beta=2, alpha=3), torch.addmm(ti, ta, tb, beta=2, alpha=3))
    with pytest.raises(TypeError, match=r"\[addmm\].*integral"):
        kiln.addmm(ki, ka, kb, alpha=0.5)


LINEAR_CASES = [((3,), True), ((2, 3), True), ((2, 3), False), ((4, 2, 3), True),
                ((4, 2, 3), False), ((0, 3), True)]


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("ishape,with_bias", LINEAR_CASES)
def test_linear(ishape, with_bias, dtype):
    torch = require_torch()
    F = torch.nn.functional
    if with_bias:
        _check_fwd_bwd(kiln.linear, F.linear, [ishape, (5, 3), (5,)], dtype)
        _check_fwd_bwd(lambda x, w, b: kiln.linear(x.transpose(0, -1).transpose(0, -1), w, bias=b),
                       lambda x, w, b: F.linear(x, w, bias=b), [ishape, (5, 3), (5,)], dtype)
    else:
        _check_fwd_bwd(kiln.linear, F.linear, [ishape, (5, 3)], dtype)
        _check_fwd_bwd(lambda x, w: kiln.linear(x, w, None), lambda x, w: F.linear(x, w, None),
                       [ishape, (5, 3)], dtype)


def test_linear_noncontiguous_batched_input():
    torch = require_torch()
    _check_fwd_bwd(lambda x, w, b: kiln.linear(x.transpose(0, 1), w, b),
                   lambda x, w, b: torch.nn.functional.linear(x.transpose(0, 1), w, b),
                   [(2, 4, 3), (5, 3), (5,)], kiln.float64)


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
def test_outer_and_dot(dtype):
    torch = require_torch()
    _check_fwd_bwd(kiln.outer, torch.outer, [(3,), (4,)], dtype)
    _check_fwd_bwd(lambda a, b: a.outer(b), lambda a, b: a.outer(b), [(0,), (2,)], dtype)
    _check_fwd_bwd(kiln.dot, torch.dot, [(5,), (5,)], dtype)
    _check_fwd_bwd(lambda a, b: a.dot(b), lambda a, b: a.dot(b), [(0,), (0,)], dtype)
    _check_fwd_bwd(lambda a, b: kiln.dot(a._slice(0, 0, None, 2), b._slice(0, 1, None, 3)),
                   lambda a, b: torch.dot(a[::2], b[1::3]), [(7,), (12,)], dtype)
    ka, ta = both(np.arange(4))
    assert_close(kiln.dot(ka, ka), torch.dot(ta, ta))
    assert_close(kiln.outer(ka, ka.double()), torch.outer(ta, ta.double()))


EINSUM_CASES = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("ij,jk", [(2, 3), (3, 4)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("ij->ji", [(2, 3)]),
    ("ij->", [(2, 3)]),
    ("ij", [(2, 3)]),
    ("ba", [(2, 3)]),
    ("i,i->", [(4,), (4,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("i,i->i", [(4,), (4,)]),
    ("ii->i", [(3, 3)]),
    ("ii", [(3, 3)]),
    ("iji->j", [(3, 2, 3)]),
    ("bii,bjj->bij", [(2, 3, 3), (2, 4, 4)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (4, 5)]),
    ("...ij,...jk", [(5, 1, 3, 4), (2, 4, 2)]),
    ("i...->...", [(3, 2)]),
    ("...ij->ij", [(2, 3, 4)]),
    ("...,...", [(2, 3), (3,)]),
    ("b...c,bc", [(2, 3, 4, 5), (2, 5)]),
    ("ijk,jil->kl", [(2, 3, 4), (3, 2, 5)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("abc,cd,bd->ad", [(2, 3, 4), (4, 5), (3, 5)]),
    ("i,i", [(1,), (3,)]),
    ("Ab,bA->A", [(3, 2), (2, 3)]),
    ("ij,kl->ijkl", [(2, 0), (1, 3)]),
    ("ij,jk->ik", [(2, 0), (0, 3)]),
    (" i j , j k -> i k ", [(2, 3), (3, 4)]),
]


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("eq,shapes", EINSUM_CASES, ids=[c[0] for c in EINSUM_CASES])
def test_einsum(eq, shapes, dtype):
    torch = require_torch()
    _check_fwd_bwd(lambda *ops: kiln.einsum(eq, *ops), lambda *ops: torch.einsum(eq, *ops),
                   shapes, dtype)


def test_einsum_list_form_noncontiguous_and_ints():
    torch = require_torch()
    ka, ta = both(_rand(4, 3))
    kb, tb = both(_rand(4, 5))
    assert_close(kiln.einsum("ji,jk->ik", [ka, kb]), torch.einsum("ji,jk->ik", [ta, tb]))
    assert_close(kiln.einsum("ji,ik->jk", ka.transpose(0, 1), kb._slice(1, 0, None, 2)),
                 torch.einsum("ji,ik->jk", ta.T, tb[:, ::2]))
    ki, ti = both(np.arange(12).reshape(3, 4))
    assert_close(kiln.einsum("ij,kj->ik", ki, ki), torch.einsum("ij,kj->ik", ti, ti))
    assert_close(kiln.einsum("ij->j", ki), torch.einsum("ij->j", ti))


def test_einsum_diagonal_is_exact_with_nonfinite_off_diagonal():
    torch = require_torch()
    x = np.full((3, 3), np.inf)
    np.fill_diagonal(x, [1.0, 2.0, 3.0])
    kx, tx = both(x)
    assert_close(kiln.einsum("ii->i", kx), torch.einsum("ii->i", tx))


# ---- gradcheck (float64 finite differences) ---------------------------------------


def _leaf(*shape, seed=0):
    return kiln.tensor(_rand(*shape, seed=seed), requires_grad=True)


@pytest.mark.parametrize("fn,shapes", [
    (kiln.matmul, [(3,), (3,)]),
    (kiln.matmul, [(2, 3), (3, 4)]),
    (kiln.matmul, [(2, 2, 3), (3,)]),
    (kiln.matmul, [(2, 1, 2, 3), (3, 3, 2)]),
    (lambda a, b: a.transpose(0, 1) @ b, [(3, 2), (3, 4)]),
    (kiln.mm, [(2, 3), (3, 2)]),
    (kiln.bmm, [(2, 2, 3), (2, 3, 2)]),
    (lambda i, a, b: kiln.addmm(i, a, b, beta=0.5, alpha=2), [(3,), (2, 4), (4, 3)]),
    (lambda i, a, b: kiln.baddbmm(i, a, b, beta=-1, alpha=0.5), [(2, 1, 3), (2, 2, 4), (2, 4, 3)]),
    (kiln.linear, [(2, 2, 3), (4, 3), (4,)]),
    (kiln.linear, [(3,), (4, 3)]),
    (kiln.outer, [(3,), (2,)]),
    (kiln.dot, [(4,), (4,)]),
    (lambda a, b: kiln.einsum("bij,bjk->bik", a, b), [(2, 2, 3), (2, 3, 2)]),
    (lambda a, b: kiln.einsum("ii,ij->j", a, b), [(3, 3), (3, 2)]),
    (lambda a, b, c: kiln.einsum("ij,jk,k", a, b, c), [(2, 3), (3, 4), (4,)]),
], ids=["dot1d", "mm2d", "mv3d", "bcast", "transposed", "mm", "bmm", "addmm", "baddbmm",
        "linear", "linear1d", "outer", "dot", "einsum_bmm", "einsum_diag", "einsum_chain"])
def test_gradcheck(fn, shapes):
    inputs = [_leaf(*s, seed=i) for i, s in enumerate(shapes)]
    assert gradcheck(fn, inputs)


@pytest.mark.parametrize("fn,shapes", [
    (kiln.matmul, [(2, 3), (3, 2)]),
    (kiln.matmul, [(2, 2, 3), (3,)]),
    (kiln.matmul, [(2, 1, 2, 3), (2, 3, 2)]),
    (lambda i, a, b: kiln.addmm(i, a, b, beta=0.5, alpha=2), [(2,), (2, 3), (3, 2)]),
    (lambda a, b: kiln.einsum("ii,ij->j", a, b), [(2, 2), (2, 3)]),
    (kiln.dot, [(3,), (3,)]),
], ids=["mm", "mv3d", "bcast", "addmm", "einsum_diag", "dot"])
def test_gradgradcheck(fn, shapes):
    inputs = [_leaf(*s, seed=i) for i, s in enumerate(shapes)]
    with kiln.no_grad():
        out_shape = tuple(fn(*inputs).shape)
    grad_out = kiln.tensor(_rand(*out_shape, seed=7), requires_grad=True)

    # What gradgradcheck does, by hand: kiln.autograd.gradgradcheck needs kiln.randn_like
    # and evaluates the first gradients under no_grad for its finite differences.
    def first_grads(*args):
        ins, go = args[:-1], args[-1]
        with kiln.enable_grad():
            return kiln.autograd.grad([fn(*ins)], list(ins), [go], create_graph=True)

    assert gradcheck(first_grads, inputs + [grad_out])


def test_double_backward_matches_torch():
    torch = require_torch()
    ka, ta = both(_rand(2, 3), requires_grad=True)
    kb, tb = both(_rand(3, 4, seed=1), requires_grad=True)
    (kg,) = kiln.autograd.grad([(ka @ kb).sum()], [ka], create_graph=True)
    (tg,) = torch.autograd.grad([(ta @ tb).sum()], [ta], create_graph=True)
    assert_close(kg, tg)
    (kg * kg).sum().backward()
    (tg * tg).sum().backward()
    assert_close(kb.grad, tb.grad)


def test_gradient_for_one_operand_only():
    torch = require_torch()
    kx, tx = both(_rand(4, 3))
    kw, tw = both(_rand(5, 3, seed=1), requires_grad=True)
    kb, tb = both(_rand(5, seed=2))
    kiln.linear(kx, kw, kb).sum().backward()
    torch.nn.functional.linear(tx, tw, tb).sum().backward()
    assert_close(kw.grad, tw.grad)
    assert kx.grad is None
    with kiln.no_grad():
        assert (kx @ kw.transpose(0, 1)).grad_fn is None


def test_grad_fn_names():
    a, b = _leaf(2, 3), _leaf(3, 4, seed=1)
    assert (a @ b).grad_fn.name() == "MmBackward0"
    assert kiln.bmm(a.unsqueeze(0), b.unsqueeze(0)).grad_fn.name() == "BmmBackward0"
    assert kiln.addmm(b._slice(0, 0, 1, 1).squeeze(0), a, b).grad_fn.name() == "AddmmBackward0"


# ---- operators and methods --------------------------------------------------------


def test_operators_and_methods():
    require_torch()
    ka, ta = both(_rand(2, 3))
    kb, tb = both(_rand(3, 2, seed=1))
    assert_close(ka @ kb, ta @ tb)
    assert_close(ka.matmul(kb), ta.matmul(tb))
    assert_close(kb.__rmatmul__(ka), ta @ tb)
    assert ka.__matmul__(3) is NotImplemented
    with pytest.raises(TypeError):
        ka @ [[1.0], [2.0], [3.0]]


# ---- bad input --------------------------------------------------------------------


def test_shape_errors_name_both_shapes():
    a, b = kiln.zeros(2, 3), kiln.zeros(4, 5)
    with pytest.raises(ValueError, match=r"\[matmul\] mat1 and mat2 shapes cannot be multiplied "
                                         r"\(2x3 and 4x5\)"):
        a @ b
    with pytest.raises(ValueError, match=r"\[mm\] mat1 and mat2 shapes cannot be multiplied "
                                         r"\(2x3 and 4x5\)"):
        kiln.mm(a, b)
    with pytest.raises(ValueError, match=r"\[bmm\] .*\(2x2x3 and 3x3x4\)"):
        kiln.bmm(kiln.zeros(2, 2, 3), kiln.zeros(3, 3, 4))
    with pytest.raises(ValueError, match=r"\[matmul\] batch dimensions .*2x2x3 and 3x3x4"):
        kiln.zeros(2, 2, 3) @ kiln.zeros(3, 3, 4)
    with pytest.raises(ValueError, match=r"\[matmul\] .*at least 1-D.*0-D and 2-D"):
        kiln.matmul(kiln.zeros(()), a)
    with pytest.raises(ValueError, match=r"\[mm\] mat1 must be a 2-D tensor.*3-D"):
        kiln.mm(kiln.zeros(1, 2, 3), a)
    with pytest.raises(ValueError, match=r"\[bmm\] batch2 must be a 3-D tensor"):
        kiln.bmm(kiln.zeros(1, 2, 3), a)
    with pytest.raises(ValueError, match=r"\[addmm\] input of shape \[3\] cannot be broadcast"):
        kiln.addmm(kiln.zeros(3), a, kiln.zeros(3, 2))
    with pytest.raises(ValueError, match=r"\[dot\] inconsistent tensor size.*3 and 4"):
        kiln.dot(kiln.zeros(3), kiln.zeros(4))
    with pytest.raises(ValueError, match=r"\[dot\] 1-D tensors expected"):
        kiln.dot(a, a)
    with pytest.raises(ValueError, match=r"\[outer\] 1-D tensors expected"):
        kiln.outer(a, kiln.zeros(3))
    with pytest.raises(ValueError, match=r"\[linear\] input of shape \[2, 3\] and weight of shape "
                                         r"\[4, 5\]"):
        kiln.linear(a, b)


def test_dtype_errors_name_dtypes():
    with pytest.raises(TypeError, match=r"\[matmul\] .*same dtype.*float32 and float64"):
        kiln.zeros(2, 3) @ kiln.zeros(3, 2, dtype=kiln.float64)
    with pytest.raises(TypeError, match=r"\[mm\] .*same dtype.*float32 and int64"):
        kiln.mm(kiln.zeros(2, 3), kiln.zeros(3, 2, dtype=kiln.int64))
    with pytest.raises(TypeError, match=r"\[addmm\] .*same dtype.*float64 and float32"):
        kiln.addmm(kiln.zeros(2, dtype=kiln.float64), kiln.zeros(2, 3), kiln.zeros(3, 2))
    with pytest.raises(TypeError, match=r"\[matmul\] bool"):
        kiln.zeros(2, 2, dtype=kiln.bool) @ kiln.zeros(2, 2, dtype=kiln.bool)
    with pytest.raises(TypeError, match=r"\[linear\] .*input and weight.*float64 and float32"):
        kiln.linear(kiln.zeros(2, 3, dtype=kiln.float64), kiln.zeros(4, 3))
    with pytest.raises(TypeError, match=r"\[einsum\] .*same dtype"):
        kiln.einsum("i,i", kiln.zeros(2), kiln.zeros(2, dtype=kiln.float64))


@pytest.mark.parametrize("eq,shapes,pattern", [
    ("ij,jk", [(2, 3), (4, 5)], r"subscript j has size 4 for operand 1"),
    ("ij", [(2, 3, 3)], r"'ij' of operand 0 name 2 dimension\(s\) but the operand has 3"),
    ("ij->k", [(2, 3)], r"output subscript k does not appear"),
    ("ij->ii", [(2, 3)], r"output subscript i appears more than once"),
    ("ij,jk", [(2, 3)], r"subscripts for 2 operand\(s\) but 1 were given"),
    ("i1", [(2, 3)], r"invalid subscript '1'"),
    ("i..j", [(2, 3)], r"'\.' that is not part of an ellipsis"),
    ("...i...", [(2, 3)], r"more than one ellipsis"),
    ("ii", [(2, 3)], r"subscript i is repeated for operand 0 of shape \[2, 3\] .* 2 != 3"),
    ("ijk...", [(2, 3)], r"name 3 dimension\(s\) but the operand has 2"),
])
def test_einsum_errors(eq, shapes, pattern):
    with pytest.raises(ValueError, match=r"\[einsum\] .*" + pattern):
        kiln.einsum(eq, *[kiln.zeros(*s) for s in shapes])


def test_einsum_bad_operand_types():
    with pytest.raises(ValueError, match=r"\[einsum\] must provide at least one operand"):
        kiln.einsum("i")
    with pytest.raises(TypeError, match=r"\[einsum\] operands must be Tensors"):
        kiln.einsum("i,i", kiln.zeros(2), 3)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("m,k,n", [(600, 300, 190), (190, 300, 601), (40, 50000, 17)])
def test_big_products_split_over_threads(threads, ta, tb, m, k, n):
    """Products above the single-thread size are split into row or column blocks over
    kiln's threads (odd sizes leave ragged last blocks); transposed operands included."""
    r = np.random.default_rng(m + n)
    a = r.standard_normal((k, m) if ta else (m, k))
    b = r.standard_normal((n, k) if tb else (k, n))
    n0 = kiln.get_num_threads()
    kiln.set_num_threads(threads)
    try:
        for dtype in (kiln.float32, kiln.float64):
            ka, kb = kiln.tensor(a, dtype=dtype), kiln.tensor(b, dtype=dtype)
            ka, kb = (ka.t() if ta else ka), (kb.t() if tb else kb)
            want = (a.T if ta else a) @ (b.T if tb else b)
            tol = 1e-4 if dtype == kiln.float32 else 1e-10
            np.testing.assert_allclose((ka @ kb).numpy(), want, rtol=tol, atol=tol * k)
            bias = kiln.tensor(r.standard_normal(n), dtype=dtype)
            np.testing.assert_allclose(kiln.addmm(bias, ka, kb).numpy(),
                                       want + bias.numpy(), rtol=tol, atol=tol * k)
    finally:
        kiln.set_num_threads(n0)


def test_linear_grads_match_torch_and_keep_weight_layout():
    torch = require_torch()
    r = np.random.default_rng(3)
    x, w, b = r.standard_normal((2, 5, 7)), r.standard_normal((4, 7)), r.standard_normal(4)
    kx, tx = both(x, requires_grad=True)
    kw, tw = both(w, requires_grad=True)
    kb, tb = both(b, requires_grad=True)
    g = r.standard_normal((2, 5, 4))
    kiln.nn.functional.linear(kx, kw, kb).backward(kiln.tensor(g))
    torch.nn.functional.linear(tx, tw, tb).backward(torch.tensor(g))
    for k, t in ((kx, tx), (kw, tw), (kb, tb)):
        assert_close(k.grad, t.grad)
    assert kw.grad.is_contiguous()
    assert gradcheck(lambda a, c, d: kiln.nn.functional.linear(a, c, d),
                     (kiln.tensor(x[:, :2], requires_grad=True), kw.detach().requires_grad_(),
                      kb.detach().requires_grad_()))
