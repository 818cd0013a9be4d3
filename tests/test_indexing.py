"""Tensor.__getitem__ / __setitem__ / index_put_ against PyTorch."""

import random
import warnings

import numpy as np
import pytest

import kiln
from compare import assert_close, require_torch, torch_dtype

torch = require_torch()

SHAPE = (4, 5, 6)
DTYPES = [kiln.float32, kiln.float64, kiln.int64, kiln.bool]


# ---- index expressions ---------------------------------------------------------------
# Keys are built from neutral pieces; ("T", array) becomes a tensor in each library.


def _tensor_piece(arr):
    return ("T", np.asarray(arr))


def _convert(key, lib):
    def one(k):
        if isinstance(k, tuple) and len(k) == 2 and k[0] == "T":
            return lib.tensor(k[1])
        return k
    if isinstance(key, tuple) and not (len(key) == 2 and key[0] == "T"):
        return tuple(one(k) for k in key)
    return one(key)


def _random_item(rng, size, dims_left):
    """One index item for a dim of `size`: (item, dims consumed)."""
    r = rng.random()
    if r < 0.18:
        return rng.choice([0, size - 1, -1, -size, size // 2]), 1
    if r < 0.40:
        return rng.choice([slice(None), slice(1, None), slice(None, None, 2), slice(-3, None),
                           slice(1, 4, 2), slice(3, 1), slice(None, -1, 3), slice(-100, 100),
                           slice(2, 2)]), 1
    if r < 0.50:
        return None, 0
    if r < 0.62:
        n = rng.randint(0, 3)
        return [rng.randrange(-size, size) for _ in range(n)] or [0], 1
    if r < 0.72:
        return _tensor_piece(np.array([[rng.randrange(size)] * 2, [rng.randrange(-size, size),
                                                                 rng.randrange(size)]])), 1
    if r < 0.82:
        return _tensor_piece(np.array(rng.randrange(size))), 1  # 0-dim: acts as an int
    if r < 0.90:
        return [rng.random() < 0.5 for _ in range(size)], 1
    return rng.choice([True, False]), 0


def _random_key(rng, shape):
    items, d = [], 0
    ellipsis_at = rng.randrange(len(shape) + 3)
    while d < len(shape) and rng.random() < 0.85:
        if len(items) == ellipsis_at:
            items.append(Ellipsis)
            break
        item, used = _random_item(rng, shape[d], len(shape) - d)
        items.append(item)
        d += used
    if rng.random() < 0.15 and d + 2 <= len(shape):  # a 2-d mask
        mask = np.random.default_rng(rng.randrange(1000)).random(shape[d:d + 2]) < 0.5
        items.append(_tensor_piece(mask))
    if len(items) == 1 and rng.random() < 0.5 and not isinstance(items[0], list):
        return items[0]
    return tuple(items)


def _keys(n, seed=0):
    rng = random.Random(seed)
    fixed = [0, -1, slice(None), slice(1, 3), (Ellipsis, 0), (None,),
             (0, None, slice(None, None, 2)), (Ellipsis,), (), ([0, 2],), (slice(None), [1, 3]),
             ([0, 1], slice(None), [2, 3]), (slice(None), [0, 1], [2, 3]),
             (0, slice(None), [1, 2]), (None, [0, 1], Ellipsis, [1, 2]), (1, None, [0, 1]),
             ([[0], [2]], [1, 2, 3]), (slice(None), [True, False, True, False, True]),
             ([True, False, True, False],), (True,), (False, 0), ([],), (slice(None), []),
             _tensor_piece(np.array(2)), (_tensor_piece(np.array(1)), Ellipsis, -1),
             (_tensor_piece(np.random.default_rng(1).random((4, 5)) < 0.5),),
             (slice(None), _tensor_piece(np.random.default_rng(2).random((5, 6)) < 0.5)),
             (_tensor_piece(np.zeros((4, 5, 6), dtype=bool)),),
             ([0, 1], Ellipsis, _tensor_piece(np.array([[1], [2]]))),
             (slice(2, None), None, [-1, 0], slice(None, None, 4))]
    return fixed + [_random_key(rng, SHAPE) for _ in range(n)]


KEYS = _keys(220)


def _base(dtype, layout, seed=0):
    """Equal kiln/torch tensors of SHAPE: contiguous, transposed or sliced with a step."""
    big = np.random.default_rng(seed).standard_normal((6, 5, 8)) * 3
    if dtype == kiln.bool:
        big = big > 0
    else:
        big = big.astype(kiln.tensor(big).to(dtype).numpy().dtype)
    if layout == "transposed":
        k = kiln.tensor(big[:, :, :4].copy()).permute(2, 1, 0)
    elif layout == "strided":
        k = kiln.tensor(big.transpose(2, 1, 0).copy())[::2]
    else:
        k = kiln.tensor(big[:, :, :4].transpose(2, 1, 0).copy())
    t = torch.tensor(k.numpy().copy())
    assert k.shape == SHAPE and (layout == "contiguous") == k.is_contiguous()
    return k, t


def _torch_getitem(t, key):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return t[_convert(key, torch)]


def _outcome(fn):
    try:
        return fn(), None
    except (IndexError, ValueError, TypeError, RuntimeError) as e:
        return None, type(e)


# ---- getitem -------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["contiguous", "transposed", "strided"])
@pytest.mark.parametrize("dtype", DTYPES, ids=repr)
def test_getitem_matches_torch(dtype, layout):
    k, t = _base(dtype, layout)
    checked = 0
    for key in KEYS:
        expected, terr = _outcome(lambda: _torch_getitem(t, key))
        actual, kerr = _outcome(lambda: k[_convert(key, kiln)])
        assert (terr is None) == (kerr is None), (key, terr, kerr)
        if terr is not None:
            continue
        checked += 1
        assert_close(actual, expected), key
        assert actual._is_view() == expected._is_view(), key
    assert checked > 150


def test_basic_index_results_are_views_sharing_memory():
    k = kiln.zeros(3, 4)
    for key in [0, (slice(None), 1), (Ellipsis, slice(1, None, 2)), (None, 1), (kiln.tensor(2),)]:
        v = k[key]
        assert v._is_view()
        v.fill_(7.0)
        assert (k.numpy() == 7).any()
        k.zero_()
    a = k[[0, 1]]
    a.fill_(5.0)
    assert not (k.numpy() == 5).any()


def test_getitem_empty_results():
    k, t = _base(kiln.float64, "contiguous")
    for key in [slice(3, 1), ([],), (slice(None), []), (False,), (Ellipsis, slice(6, None)),
                (_tensor_piece(np.zeros((4,), dtype=bool)),)]:
        assert_close(k[_convert(key, kiln)], _torch_getitem(t, key))
    e = kiln.zeros(0, 3)
    assert e[:, 1].shape == (0,)
    assert e[[]].shape == (0, 3)


def test_zero_dim_tensor_indexing():
    k = kiln.tensor(3.5)
    assert k[()].item() == 3.5 and k[()]._is_view()
    assert k[None].shape == (1,)
    assert k[...].shape == ()
    assert k[True].shape == (1,)
    with pytest.raises(IndexError, match="invalid index of a 0-dim tensor"):
        k[0]


def test_numpy_and_index_keys():
    k, t = _base(kiln.float32, "contiguous")
    assert_close(k[np.int64(2)], t[2])
    assert_close(k[np.array([0, 3])], t[np.array([0, 3])])
    assert_close(k[:, np.array([True, False, True, False, True])],
                 t[:, torch.tensor([True, False, True, False, True])])
    assert_close(k[kiln.tensor([1, 2], dtype=kiln.int32)],
                 t[torch.tensor([1, 2], dtype=torch.int32)])


# ---- errors ---------------------------------------------------------------------------


def test_index_errors():
    k = kiln.zeros(3, 4)
    with pytest.raises(IndexError, match="index 5 is out of bounds for dimension 0 with size 3"):
        k[5]
    with pytest.raises(IndexError, match="index -4 is out of bounds for dimension 0 with size 3"):
        k[-4]
    with pytest.raises(IndexError, match="index 5 is out of bounds for dimension 1 with size 4"):
        k[:, [5]]
    with pytest.raises(IndexError, match="index 3 is out of bounds for dimension 0 with size 3"):
        k[kiln.tensor([0, 3])]
    with pytest.raises(IndexError, match="too many indices for tensor of dimension 2"):
        k[0, 0, 0]
    with pytest.raises(IndexError, match="single ellipsis"):
        k[..., ...]
    with pytest.raises(ValueError, match="step must be greater than zero"):
        k[::-1]
    with pytest.raises(ValueError):
        k[::0]
    with pytest.raises(IndexError, match="tensors used as indices must be long, int, byte or bool"):
        k[kiln.tensor([0.0])]
    with pytest.raises(IndexError, match="tensors used as indices"):
        k[[0.5]]
    with pytest.raises(IndexError, match="shape of the mask"):
        k[kiln.tensor([True, False])]
    with pytest.raises(TypeError):
        k["a"]
    with pytest.raises(TypeError, match="can't assign a list"):
        k[0] = [1, 2, 3, 4]
    with pytest.raises(ValueError, match="shape mismatch"):
        k[0] = kiln.zeros(3)
    with pytest.raises(ValueError, match="shape mismatch"):
        k[[0, 1]] = kiln.zeros(3)
    with pytest.raises(TypeError, match="dtypes match"):
        k[[0]] = kiln.zeros(4, dtype=kiln.int64)
    with pytest.raises(IndexError, match="index 9 is out of bounds"):
        k[[9]] = 1.0


# ---- setitem --------------------------------------------------------------------------


def _value_cases(shape, dtype, rng):
    """(kiln value, torch value) pairs that broadcast to `shape`."""
    full = rng.standard_normal(shape) * 3
    cases = [(2, 2), (-1.5, -1.5), (True, True)]
    if dtype == kiln.bool:
        cases = [(True, True), (False, False)]
    arrs = [full, full[None]]  # a leading size-1 dim is dropped
    if len(shape) >= 1:
        arrs.append(rng.standard_normal(shape[-1:]))  # broadcast over the leading dims
    for a in arrs:
        ka, ta = kiln.tensor(np.ascontiguousarray(a)), torch.tensor(np.ascontiguousarray(a))
        if dtype == kiln.bool:
            ka, ta = kiln.tensor(ta.numpy() > 0), ta > 0
        else:
            ka, ta = ka.to(dtype), ta.to(torch_dtype(dtype))
        cases.append((ka, ta))
    return cases


def _has_duplicates(key):
    ids = torch.arange(int(np.prod(SHAPE))).reshape(SHAPE)
    sel = _torch_getitem(ids, key).reshape(-1)
    return sel.unique().numel() != sel.numel()


@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
@pytest.mark.parametrize("dtype", DTYPES, ids=repr)
def test_setitem_matches_torch(dtype, layout):
    rng = np.random.default_rng(1)
    checked = 0
    for key in KEYS[::2]:
        k0, t0 = _base(dtype, layout)
        ref, err = _outcome(lambda: _torch_getitem(t0, key))
        if err is not None:
            continue
        dup = _has_duplicates(key)
        for kv, tv in _value_cases(tuple(ref.shape), dtype, rng):
            if dup and isinstance(kv, kiln.Tensor):
                continue  # which duplicate wins is unspecified
            k, t = _base(dtype, layout)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _, terr = _outcome(lambda: t.__setitem__(_convert(key, torch), tv))
            _, kerr = _outcome(lambda: k.__setitem__(_convert(key, kiln), kv))
            assert (terr is None) == (kerr is None), (key, kv, terr, kerr)
            if terr is None:
                checked += 1
                assert_close(k, t), (key, kv)
    assert checked > 150


def test_setitem_value_aliasing_self():
    k = kiln.tensor(np.arange(5.0))
    k[1:] = k[:-1]
    assert k.tolist() == [0, 0, 1, 2, 3]
    k = kiln.tensor(np.arange(5.0))
    k[[1, 2, 3, 4]] = k[:4]
    assert k.tolist() == [0, 0, 1, 2, 3]


def test_setitem_bumps_version_and_writes_through_views():
    k = kiln.zeros(3, 4)
    v0 = k._version
    row = k[1]
    row[2] = 5.0
    assert k.tolist()[1][2] == 5.0
    k[:, 0] = 1.0
    assert k._version > v0


# ---- index_put ------------------------------------------------------------------------


@pytest.mark.parametrize("accumulate", [False, True])
def test_index_put_matches_torch(accumulate):
    rng = np.random.default_rng(3)
    arr = rng.standard_normal((4, 5))
    for idx in [([0, 2, 2],), ([0, 1], [2, 3]), ([[0], [3]], [1, 2, 4]),
                (np.array([True, False, True, True]),),
                (np.random.default_rng(0).random((4, 5)) > 0.5,)]:
        k, t = kiln.tensor(arr), torch.tensor(arr)
        kidx = tuple(kiln.tensor(np.asarray(i)) for i in idx)
        tidx = tuple(torch.tensor(np.asarray(i)) for i in idx)
        shape = t[tidx].shape
        vals = rng.standard_normal(tuple(shape))
        dup = not accumulate and isinstance(idx[0], list) and idx[0] == [0, 2, 2]
        kv, tv = kiln.tensor(vals), torch.tensor(vals)
        if dup:
            kv, tv = kiln.tensor(np.full(vals.shape, 1.25)), torch.tensor(np.full(vals.shape, 1.25))
        assert_close(k.index_put(kidx, kv, accumulate=accumulate),
                     t.index_put(tidx, tv, accumulate=accumulate))
        k.index_put_(kidx, kv, accumulate)
        t.index_put_(tidx, tv, accumulate)
        assert_close(k, t)
    kx = kiln.zeros(3, dtype=kiln.int64)
    kx.index_put_((kiln.tensor([0, 0, 2]),), kiln.tensor([1, 2, 3]), accumulate=True)
    assert kx.tolist() == [3, 0, 3]
    assert kiln.index_put(kiln.zeros(2), (kiln.tensor([1]),), kiln.tensor(4.0)).tolist() == [0, 4]
    # None keeps a dim whole, like `:` in t[:, idx].
    k = kiln.zeros(2, 3)
    k.index_put_((None, kiln.tensor([2, 0])), kiln.tensor([1.0, 2.0]))
    assert k.tolist() == [[2, 0, 1], [2, 0, 1]]


# ---- autograd -------------------------------------------------------------------------

def _gradgradcheck(fn, inputs, grad_outputs):
    """gradcheck of the first gradients (kiln.autograd.gradgradcheck needs kiln.randn_like)."""
    n = len(inputs)

    def first_grads(*args):
        with kiln.enable_grad():  # gradcheck evaluates finite differences under no_grad
            outs = fn(*args[:n])
            return kiln.autograd.grad([outs], list(args[:n]), list(args[n:]), create_graph=True,
                                      allow_unused=True)

    return kiln.autograd.gradcheck(first_grads, tuple(inputs) + tuple(grad_outputs))


GRAD_KEYS = [k for k in KEYS[:80] if not (k is True or k is False or k == (True,))]


def test_getitem_gradients_match_torch():
    rng = np.random.default_rng(4)
    arr = rng.standard_normal(SHAPE)
    done = 0
    for key in GRAD_KEYS:
        tx = torch.tensor(arr, requires_grad=True)
        ty, err = _outcome(lambda: _torch_getitem(tx, key))
        if err is not None or ty.numel() == 0:
            continue
        w = rng.standard_normal(tuple(ty.shape))
        (ty * torch.tensor(w)).sum().backward()
        kx = kiln.tensor(arr, requires_grad=True)
        ky = kx[_convert(key, kiln)]
        (ky * kiln.tensor(w)).sum().backward()
        assert_close(kx.grad, tx.grad), key
        done += 1
    assert done > 40


@pytest.mark.parametrize("key", [
    (1, slice(None, None, 2)), (Ellipsis, None, slice(1, 4)), ([0, 2, 2], slice(1, 3)),
    (slice(None), [[1, 0], [4, 4]], [0, 5]), ("mask",), (0, "mask2"), (kiln.tensor(1), -1),
])
def test_getitem_gradcheck_and_gradgradcheck(key):
    rng = np.random.default_rng(5)
    x = kiln.tensor(rng.standard_normal((3, 5, 6)), requires_grad=True)
    mask = kiln.tensor(rng.standard_normal((3, 5, 6)) > 0)
    mask2 = kiln.tensor(rng.standard_normal((5, 6)) > 0)
    key = tuple(mask if k == "mask" else mask2 if k == "mask2" else k for k in key)
    assert kiln.autograd.gradcheck(lambda a: a[key], (x,))
    go = kiln.tensor(rng.standard_normal(tuple(x[key].shape)), requires_grad=True)
    assert _gradgradcheck(lambda a: a[key] * a[key], (x,), (go,))


def test_double_backward_through_select_and_slice():
    arr = np.random.default_rng(6).standard_normal((4, 5))
    res = []
    for lib in (kiln, torch):
        x = lib.tensor(arr, requires_grad=True)
        y = x[1:, 2] * x[1:, 2] * x[1:, 2]
        (g,) = lib.autograd.grad(y.sum(), x, create_graph=True)
        (gg,) = lib.autograd.grad((g * g).sum(), x)
        res.append((g, gg))
    assert_close(res[0][0], res[1][0])
    assert_close(res[0][1], res[1][1])


@pytest.mark.parametrize("key", [0, (slice(None), 1), (Ellipsis, [0, 2]), "mask", ([1, 2], [0, 3]),
                                 (slice(1, None), None)])
def test_setitem_on_nonleaf_backward_matches_torch(key):
    rng = np.random.default_rng(7)
    arr, w = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    out = []
    for lib in (kiln, torch):
        x = lib.tensor(arr, requires_grad=True)
        k = lib.tensor(arr > 0) if key == "mask" else key
        y = x * 2
        shape = tuple(y[k].shape)
        v = lib.tensor(np.arange(float(np.prod(shape))).reshape(shape), requires_grad=True)
        y[k] = v * 3
        y[0, 0] = 5.0
        (y * lib.tensor(w)).sum().backward()
        out.append((x.grad, v.grad, y))
    for a, b in zip(*out):
        assert_close(a, b)


def test_setitem_gradcheck():
    rng = np.random.default_rng(8)
    x = kiln.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    v = kiln.tensor(rng.standard_normal((4,)), requires_grad=True)
    m = kiln.tensor(rng.standard_normal((3, 4)) > 0)

    def basic(a, b):
        y = a * 1
        y[1] = b
        return y

    def advanced(a, b):
        y = a * 1
        y[[0, 2]] = b * b
        y[m] = 0.0
        return y

    go = kiln.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    for fn in (basic, advanced):
        assert kiln.autograd.gradcheck(fn, (x, v))
        assert _gradgradcheck(fn, (x, v), (go,))


def test_index_put_gradcheck():
    rng = np.random.default_rng(9)
    x = kiln.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    v = kiln.tensor(rng.standard_normal((3, 3)), requires_grad=True)
    go = kiln.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    for acc in (False, True):
        # Duplicate indices only when accumulating (otherwise which write wins is unspecified).
        idx = (kiln.tensor([0, 2, 2] if acc else [0, 3, 2]),)
        assert kiln.autograd.gradcheck(lambda a, b: a.index_put(idx, b, accumulate=acc), (x, v))
        assert _gradgradcheck(lambda a, b: a.index_put(idx, b * b, accumulate=acc),
                                           (x, v), (go,))


def test_setitem_refuses_leaf_requiring_grad_but_works_under_no_grad():
    x = kiln.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        x[0] = 1.0
    with kiln.no_grad():
        x[0] = 1.0
    assert x.tolist() == [1, 0, 0] and x.is_leaf


def test_setitem_value_requiring_grad_into_plain_buffer():
    v = kiln.tensor([1.0, 2.0], requires_grad=True)
    buf = kiln.zeros(3, 2)
    buf[1] = v
    assert not buf.is_leaf
    (buf * kiln.tensor([[1.0, 1.0], [2.0, 3.0], [4.0, 4.0]])).sum().backward()
    assert v.grad.tolist() == [2.0, 3.0]


# ---- iteration and membership ---------------------------------------------------------


def test_iter_and_contains():
    k = kiln.tensor([[1.0, 2.0], [3.0, 4.0]])
    rows = list(k)
    assert len(rows) == 2 and rows[1].tolist() == [3.0, 4.0] and rows[0]._is_view()
    assert [r.item() for r in kiln.tensor([5, 6])] == [5, 6]
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        iter(kiln.tensor(1.0))
    assert 3.0 in k and 7 not in k
    assert kiln.tensor([1.0, 2.0]) in k
    with pytest.raises(RuntimeError, match="__contains__"):
        "a" in k


def test_setitem_into_integer_tensor_drops_history():
    v = kiln.tensor([1.5, 2.5], requires_grad=True)
    x = kiln.zeros(3, 2, dtype=kiln.int64)
    x[0] = v
    assert x.tolist() == [[1, 2], [0, 0], [0, 0]] and not x.requires_grad


def test_gradients_through_noncontiguous_inputs():
    rng = np.random.default_rng(10)
    x = kiln.tensor(rng.standard_normal((5, 4)), requires_grad=True)
    for key in [([0, 3, 1], slice(None, None, 2)), (slice(1, 4), [4, 0])]:
        go = kiln.tensor(rng.standard_normal(tuple(x.t()[key].shape)), requires_grad=True)
        assert kiln.autograd.gradcheck(lambda a: a.t()[key], (x,))
        assert _gradgradcheck(lambda a: a.t()[key] * a.t()[key], (x,), (go,))
