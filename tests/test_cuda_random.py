"""CUDA random kernels: one seed gives the same numbers as the CPU kernels (bit for bit,
or to the last bit of log/sin/cos for normal_), generators advance alike, and the
samples have the right moments. Marked `cuda`; KILN_CUDA_TESTS_ON_CPU=1 runs them with
the CPU standing in for the GPU (see test_cuda_index.py).
"""
# Lambdas here run at once inside the loops that define them, so late binding is harmless.
# ruff: noqa: B023

import kiln
import numpy as np
import pytest
from test_cuda import ALL, FLOATS
from test_cuda_index import DEVICE, close, host, same

pytestmark = pytest.mark.cuda if DEVICE == "cuda" else []


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
    same_stream(
        lambda dev: kiln.empty(4, 9, dtype=dtype, device=dev).normal_(3, 0.5),
        exact=False,
        rtol=rtol,
    )


@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_random_and_randint_same_numbers_as_cpu(dtype):
    same_stream(lambda dev: kiln.empty(500, dtype=dtype, device=dev).random_())
    if dtype != kiln.bool:
        same_stream(lambda dev: kiln.randint(0, 7, (300,), dtype=dtype, device=dev))


@pytest.mark.parametrize(
    "dtype", [kiln.float32, kiln.float64, kiln.float16, kiln.int64, kiln.bool], ids=str
)
def test_bernoulli_same_numbers_as_cpu(dtype):
    same_stream(lambda dev: kiln.empty(999, dtype=dtype, device=dev).bernoulli_(0.3))
    p = np.linspace(0, 1, 64).reshape(8, 8)
    same_stream(
        lambda dev: kiln.empty(8, 8, dtype=dtype, device=dev).bernoulli_(kiln.tensor(p).to(dev))
    )
    same_stream(lambda dev: kiln.bernoulli(kiln.tensor(p).to(dev).t()))


def test_randperm_and_multinomial_same_numbers_as_cpu():
    for n in (0, 1, 10, 1000):
        same_stream(lambda dev: kiln.randperm(n, device=dev))
    same_stream(lambda dev: kiln.randperm(50, dtype=kiln.float32, device=dev))
    w = np.abs(np.random.default_rng(0).standard_normal((6, 20)))
    w[:, 3] = 0
    same_stream(lambda dev: kiln.multinomial(kiln.tensor(w).to(dev), 40, replacement=True))
    same_stream(
        lambda dev: kiln.multinomial(kiln.tensor(w[0]).float().to(dev), 5, replacement=True)
    )
    # keys from log(): a near tie could order differently on the GPU (practically never)
    same_stream(lambda dev: kiln.multinomial(kiln.tensor(w).to(dev), 10, replacement=False))


def test_generator_advances_like_cpu_and_cuda_seed_is_separate():
    def draws(dev):
        return kiln.cat(
            [
                kiln.rand(5, device=dev),
                kiln.randint(0, 100, (5,), device=dev).float(),
                kiln.rand(5, device=dev),
            ]
        )

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
