"""clamp, lerp, masked_fill, addcmul/addcdiv, where and nan_to_num against PyTorch."""

import math

import kiln
import numpy as np
import pytest
from compare import assert_close, both, dtype_name, require_torch
from elementwise_cases import FLOAT_DTYPES, domain, gradgrad, rng
from kiln.autograd import gradcheck

torch = require_torch()


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
    gradgrad(lambda a: a.clamp(min=-0.5) * a, np.array([-2.1, -0.3, 0.4, 1.7]))


def test_lerp():
    for dt in FLOAT_DTYPES:
        ks, ts = both(domain(None, (3, 4), rng(1)), dtype=dt)
        ke, te = both(domain(None, (4,), rng(2)), dtype=dt)
        kw, tw = both(domain(None, (3, 1), rng(3)), dtype=dt)
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
    ks, ts = both(domain(None, (2, 3), rng(1)), requires_grad=True)
    ke, te = both(domain(None, (3,), rng(2)), requires_grad=True)
    kw, tw = both(domain(None, (2, 1), rng(3)), requires_grad=True)
    kiln.lerp(ks, ke, kw).sum().backward()
    torch.lerp(ts, te, tw).sum().backward()
    for a, b in [(ks, ts), (ke, te), (kw, tw)]:
        assert_close(a.grad, b.grad)
    assert gradcheck(lambda a, b, c: kiln.lerp(a, b, c), (ks.detach().requires_grad_(),
                                                         ke.detach().requires_grad_(),
                                                         kw.detach().requires_grad_()))
    gradgrad(lambda a, b: kiln.lerp(a, b, 0.3) * a, domain(None, (3,), rng(4)),
              domain(None, (3,), rng(5)))


def test_masked_fill():
    k, t = both(domain(None, (3, 4), rng(1)))
    km, tm = both(rng(2).random((3, 4)) > 0.5)
    kr, tr = both(rng(3).random((4,)) > 0.5)
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
    k, t = both(domain(None, (3, 4), rng(1)), requires_grad=True)
    km, tm = both(rng(2).random((4,)) > 0.5)
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
        ka, ta = both(domain(None, (3, 4), rng(1)), dtype=dt)
        kb, tb = both(domain(None, (4,), rng(2)), dtype=dt)
        kc, tc = both(domain("nonzero", (3, 1), rng(3)), dtype=dt)
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
    ka, ta = both(domain(None, (2, 3), rng(1)), requires_grad=True)
    kb, tb = both(domain(None, (3,), rng(2)), requires_grad=True)
    kc, tc = both(domain("nonzero", (2, 1), rng(3)), requires_grad=True)
    kf(ka, kb, kc, value=0.7).sum().backward()
    tf(ta, tb, tc, value=0.7).sum().backward()
    for a, b in [(ka, ta), (kb, tb), (kc, tc)]:
        assert_close(a.grad, b.grad)
    fresh = [x.detach().requires_grad_() for x in (ka, kb, kc)]
    assert gradcheck(lambda a, b, c: kf(a, b, c, value=0.7), fresh)
    gradgrad(lambda a, b, c: kf(a, b, c, value=0.7), ka.detach().numpy(), kb.detach().numpy(),
              kc.detach().numpy())


def test_addcmul_inplace_autograd():
    k, t = both(domain(None, (3,), rng(1)), requires_grad=True)
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
