"""CUDA kernels of the ternary, range, random, gather/scatter, indexing, join, embedding
and sort families: differential tests against kiln's CPU kernels (and PyTorch where
it adds something), gradients on the device, and same-seed random streams.

Every test is marked `cuda` and skips without a GPU. Run on a GPU machine with:
    cd tests && python -m pytest -q test_cuda_index.py
KILN_CUDA_TESTS_ON_CPU=1 runs the same tests with the CPU standing in for the GPU,
which checks the tests themselves on a machine without one.
"""

import os

import numpy as np
import pytest

import kiln
import kiln.nn.functional as F
from compare import assert_close, require_torch, torch_dtype
from test_cuda import ALL, FLOATS, sample

DEVICE = "cpu" if os.environ.get("KILN_CUDA_TESTS_ON_CPU") else "cuda"
pytestmark = pytest.mark.cuda if DEVICE == "cuda" else []

INTS = [kiln.int64, kiln.int32, kiln.int16, kiln.int8, kiln.uint8]


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
    same(*both_devices(lambda c, x: kiln.where(c.t(), x.to(dtype).t(), x.to(dtype)[0]),
                       sample((6, 6), kiln.bool), sample((6, 6), dtype)))


def test_where_gradient_and_masked_fill():
    c = sample((5, 4), kiln.bool)
    grads_match(lambda x, y: kiln.where(kiln.tensor(c).to(x.device), x, y), sample((5, 4), kiln.float64),
                sample((4,), kiln.float64))
    x = sample((5, 4), kiln.float32)
    same(*both_devices(lambda x, m: x.masked_fill(m, -1.5), x, c))


@pytest.mark.parametrize("dtype", [d for d in ALL if d != kiln.bool], ids=str)
def test_clamp(dtype):
    x = sample((6, 7), dtype)
    same(*both_devices(lambda t: kiln.clamp(t.to(dtype), min=-3, max=4), x))
    same(*both_devices(lambda t: kiln.clamp(t.to(dtype).t(), max=2), x))
    lo, hi = sample((7,), dtype, 3), sample((6, 1), dtype, 4)
    same(*both_devices(lambda t, l, h: kiln.clamp(t.to(dtype), l.to(dtype), h.to(dtype)), x, lo, hi))


def test_clamp_propagates_nan():
    x = np.array([np.nan, -2.0, 0.5, 7.0])
    same(*both_devices(lambda t: t.clamp(-1, 1), x))
    same(*both_devices(lambda t, lo: t.clamp(min=lo), x, np.array([0.0, np.nan, 0.0, 0.0])))


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_lerp_addcmul_addcdiv(dtype):
    a, b, c = (sample((5, 6), dtype, s) for s in range(3))
    rtol = None if dtype in (kiln.float16, kiln.bfloat16) else 1e-6  # FMA contraction on the GPU
    close(*both_devices(lambda x, y: kiln.lerp(x.to(dtype), y.to(dtype), 0.3), a, b), rtol)
    close(*both_devices(lambda x, y, w: kiln.lerp(x.to(dtype), y.to(dtype), w.to(dtype).t()), a, b,
                        sample((6, 5), dtype, 9)), rtol)
    close(*both_devices(lambda x, y, z: kiln.addcmul(x.to(dtype), y.to(dtype), z.to(dtype), value=0.5),
                        a, b, c), rtol)
    close(*both_devices(lambda x, y, z: kiln.addcdiv(x.to(dtype), y.to(dtype).t().t(), z.to(dtype),
                                                     value=-2), a, b, c), rtol)


@pytest.mark.parametrize("dtype", INTS + [kiln.bool], ids=str)
def test_addcmul_integers(dtype):
    a, b, c = (sample((4, 5), dtype, s) for s in range(3))
    same(*both_devices(lambda x, y, z: kiln.addcmul(x.to(dtype), y.to(dtype), z.to(dtype)), a, b, c))


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
    same(kiln.linspace(-3, 11, steps, dtype=dtype, device=DEVICE), kiln.linspace(-3, 11, steps, dtype=dtype))
    if dtype.is_floating_point:
        same(kiln.linspace(0.1, -0.7, steps, dtype=dtype, device=DEVICE),
             kiln.linspace(0.1, -0.7, steps, dtype=dtype))


# ---- random ----------------------------------------------------------------------------


def seeded(fn, device, seed=1234):
    kiln.manual_seed(seed)
    return fn(device)


def same_stream(fn, exact=True, rtol=None):
    """fn(device) draws the same numbers on the device as on the CPU for one seed."""
    d, h = seeded(fn, DEVICE), seeded(fn, "cpu")
    if exact:
        same(d, h)
    else:
        close(d, h, rtol)


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_uniform_same_numbers_as_cpu(dtype):
    same_stream(lambda dev: kiln.rand(1000, 3, dtype=dtype, device=dev))
    same_stream(lambda dev: kiln.empty(37, dtype=dtype, device=dev).uniform_(-2, 5))
    # a non-contiguous target is filled through a contiguous temporary, as on the CPU
    same_stream(lambda dev: kiln.empty(6, 5, dtype=dtype, device=dev).t().uniform_())


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_normal_same_numbers_as_cpu(dtype):
    # log/sin/cos of the GPU may differ from the host's in the last bit
    rtol = {kiln.float64: 1e-12, kiln.float32: 1e-5}.get(dtype)
    same_stream(lambda dev: kiln.randn(1001, dtype=dtype, device=dev), exact=False, rtol=rtol)
    same_stream(lambda dev: kiln.empty(4, 9, dtype=dtype, device=dev).normal_(3, 0.5), exact=False,
                rtol=rtol)


@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_random_and_randint_same_numbers_as_cpu(dtype):
    same_stream(lambda dev: kiln.empty(500, dtype=dtype, device=dev).random_())
    if dtype != kiln.bool:
        same_stream(lambda dev: kiln.randint(0, 7, (300,), dtype=dtype, device=dev))


@pytest.mark.parametrize("dtype", [kiln.float32, kiln.float64, kiln.float16, kiln.int64, kiln.bool],
                         ids=str)
def test_bernoulli_same_numbers_as_cpu(dtype):
    same_stream(lambda dev: kiln.empty(999, dtype=dtype, device=dev).bernoulli_(0.3))
    p = np.linspace(0, 1, 64).reshape(8, 8)
    same_stream(lambda dev: kiln.empty(8, 8, dtype=dtype, device=dev).bernoulli_(kiln.tensor(p).to(dev)))
    same_stream(lambda dev: kiln.bernoulli(kiln.tensor(p).to(dev).t()))


def test_randperm_and_multinomial_same_numbers_as_cpu():
    for n in (0, 1, 10, 1000):
        same_stream(lambda dev: kiln.randperm(n, device=dev))
    same_stream(lambda dev: kiln.randperm(50, dtype=kiln.float32, device=dev))
    w = np.abs(np.random.default_rng(0).standard_normal((6, 20)))
    w[:, 3] = 0
    same_stream(lambda dev: kiln.multinomial(kiln.tensor(w).to(dev), 40, replacement=True))
    same_stream(lambda dev: kiln.multinomial(kiln.tensor(w[0]).float().to(dev), 5, replacement=True))
    # keys from log(): a near tie could order differently on the GPU (practically never)
    same_stream(lambda dev: kiln.multinomial(kiln.tensor(w).to(dev), 10, replacement=False))


def test_generator_advances_like_cpu_and_cuda_seed_is_separate():
    def draws(dev):
        return kiln.cat([kiln.rand(5, device=dev), kiln.randint(0, 100, (5,), device=dev).float(),
                         kiln.rand(5, device=dev)])
    same_stream(draws)
    if DEVICE == "cuda":
        kiln.cuda.manual_seed(7)
        a = kiln.rand(8, device="cuda")
        kiln.rand(8)  # the CPU generator is separate
        kiln.cuda.manual_seed(7)
        same(kiln.rand(8, device="cuda"), host(a))
        g = kiln.Generator(DEVICE).manual_seed(11)
        x = kiln.rand(6, device=DEVICE, generator=g)
        same(x, kiln.rand(6, generator=kiln.Generator().manual_seed(11)))


def test_random_moments():
    kiln.manual_seed(0)
    n = kiln.randn(1 << 20, device=DEVICE).cpu().numpy()
    assert abs(n.mean()) < 5e-3 and abs(n.std() - 1) < 5e-3
    u = kiln.rand(1 << 20, device=DEVICE).cpu().numpy()
    assert abs(u.mean() - 0.5) < 2e-3 and u.min() >= 0 and u.max() < 1
    b = kiln.empty(1 << 20, device=DEVICE).bernoulli_(0.25).cpu().numpy()
    assert abs(b.mean() - 0.25) < 3e-3
    r = kiln.randint(0, 10, (1 << 20,), device=DEVICE).cpu().numpy()
    assert r.min() == 0 and r.max() == 9 and abs(np.bincount(r) / r.size - 0.1).max() < 3e-3


def test_random_bad_probabilities_raise():
    with pytest.raises(ValueError, match="bernoulli"):
        kiln.empty(3, device=DEVICE).bernoulli_(kiln.tensor([0.5, 1.5, 0.2]).to(DEVICE))
    with pytest.raises(ValueError, match="multinomial"):
        kiln.multinomial(kiln.tensor([[0.2, float("nan")]]).to(DEVICE), 1)
    with pytest.raises(ValueError, match="multinomial"):
        kiln.multinomial(kiln.tensor([[1.0, 2.0], [0.0, 0.0]]).to(DEVICE), 1)
    with pytest.raises(ValueError, match="multinomial"):
        kiln.multinomial(kiln.tensor([[1.0, 0.0, 0.0]]).to(DEVICE), 2, replacement=False)
    assert kiln.rand(2, device=DEVICE).shape == (2,)  # the device still works
