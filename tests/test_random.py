"""Random sampling: generator semantics, reproducibility and distribution checks.

kiln's streams are not PyTorch's, so values are checked statistically (fixed
seeds make every check deterministic) and reproducibility is checked exactly.
"""

import math

import kiln
import numpy as np
import pytest

FLOATS = ["float16", "bfloat16", "float32", "float64"]


def _np(t):
    return (t.float() if t.dtype in (kiln.float16, kiln.bfloat16) else t).numpy().ravel()


def _ks(sample, cdf):
    """Kolmogorov-Smirnov distance between a sample and a CDF."""
    x = np.sort(np.asarray(sample, dtype=np.float64))
    n = x.size
    c = np.array([cdf(v) for v in x])
    return max(np.max(np.arange(1, n + 1) / n - c), np.max(c - np.arange(n) / n))


def _normal_cdf(v):
    return 0.5 * (1 + math.erf(v / math.sqrt(2)))


def test_philox_known_answers():
    # Known-answer vectors of Philox4x32-10 from the Random123 distribution.
    assert kiln._C._philox4x32_10([0, 0, 0, 0], [0, 0]) == \
        [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    assert kiln._C._philox4x32_10([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2) == \
        [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]
    assert kiln._C._philox4x32_10([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344],
                                  [0xA4093822, 0x299F31D0]) == \
        [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]


@pytest.mark.parametrize("dtype", FLOATS)
def test_rand_is_uniform(dtype):
    g = kiln.Generator().manual_seed(1)
    x = kiln.rand(20000, generator=g, dtype=getattr(kiln, dtype))
    assert x.dtype == getattr(kiln, dtype) and x.shape == (20000,)
    a = _np(x)
    assert a.min() >= 0 and a.max() < 1
    assert abs(a.mean() - 0.5) < 0.01
    assert abs(a.var() - 1 / 12) < 0.005
    if dtype in ("float32", "float64"):
        assert _ks(a[:5000], lambda v: min(max(v, 0.0), 1.0)) < 0.025


@pytest.mark.parametrize("dtype", FLOATS)
def test_randn_is_standard_normal(dtype):
    g = kiln.Generator().manual_seed(2)
    a = _np(kiln.randn(20000, generator=g, dtype=getattr(kiln, dtype)))
    assert abs(a.mean()) < 0.03
    assert abs(a.std() - 1) < 0.03
    # Fourth moment of N(0, 1) is 3: tails are neither cut nor inflated.
    assert abs((a ** 4).mean() - 3) < 0.2
    if dtype in ("float32", "float64"):
        assert _ks(a[:5000], _normal_cdf) < 0.025


def test_shapes_and_keywords():
    assert kiln.rand(2, 3).shape == (2, 3) and kiln.rand((2, 3)).shape == (2, 3)
    assert kiln.randn([4]).shape == (4,) and kiln.rand(()).shape == ()
    assert kiln.rand(0, 3).shape == (0, 3)
    assert kiln.rand(3).dtype == kiln.float32
    assert kiln.randn(3, dtype=kiln.float64).dtype == kiln.float64
    x = kiln.randn(3, requires_grad=True)
    assert x.requires_grad and x.is_leaf
    assert kiln.rand(2, device="cpu").device.type == "cpu"
    kiln.set_default_dtype(kiln.float64)
    try:
        assert kiln.rand(2).dtype == kiln.float64
    finally:
        kiln.set_default_dtype(kiln.float32)


def test_like_forms():
    base = kiln.zeros(3, 4, dtype=kiln.float64)
    for fn in (kiln.rand_like, kiln.randn_like):
        y = fn(base)
        assert y.shape == (3, 4) and y.dtype == kiln.float64
        assert fn(base, dtype=kiln.float16).dtype == kiln.float16
    r = kiln.randint_like(base, 5)
    assert r.dtype == kiln.float64 and set(_np(r)) <= {0, 1, 2, 3, 4}
    r = kiln.randint_like(kiln.zeros(100, dtype=kiln.int32), 3, 6)
    assert r.dtype == kiln.int32 and set(r.tolist()) == {3, 4, 5}
    assert kiln.rand_like(base, requires_grad=True).requires_grad


def test_manual_seed_reproduces():
    kiln.manual_seed(123)
    a = (kiln.rand(5), kiln.randn(5), kiln.randint(0, 100, (5,)), kiln.randperm(7))
    kiln.manual_seed(123)
    b = (kiln.rand(5), kiln.randn(5), kiln.randint(0, 100, (5,)), kiln.randperm(7))
    for x, y in zip(a, b):
        assert x.tolist() == y.tolist()
    assert kiln.initial_seed() == 123
    c = kiln.rand(5)
    assert c.tolist() != a[0].tolist()  # the stream moved on
    kiln.manual_seed(124)
    assert kiln.rand(5).tolist() != a[0].tolist()


def test_generator_objects_are_independent():
    g1 = kiln.Generator().manual_seed(7)
    g2 = kiln.Generator(device="cpu").manual_seed(7)
    assert g1.device.type == "cpu"
    x = kiln.randn(10, generator=g1)
    kiln.rand(10)  # the default generator does not disturb g2
    assert kiln.randn(10, generator=g2).tolist() == x.tolist()
    assert g1.initial_seed() == 7
    assert isinstance(kiln.default_generator, kiln.Generator)
    assert kiln.manual_seed(5) is not None and kiln.default_generator.initial_seed() == 5


def test_get_set_state():
    g = kiln.Generator().manual_seed(11)
    kiln.rand(3, generator=g)
    state = g.get_state()
    assert state.dtype == kiln.uint8 and state.dim() == 1
    a = kiln.rand(4, generator=g)
    g.set_state(state)
    assert kiln.rand(4, generator=g).tolist() == a.tolist()
    # The global functions act on the default generator.
    s = kiln.get_rng_state()
    b = kiln.randn(4)
    kiln.set_rng_state(s)
    assert kiln.randn(4).tolist() == b.tolist()
    with pytest.raises(TypeError, match=r"\[Generator.set_state\] expected a uint8 tensor"):
        g.set_state(kiln.zeros(16))
    with pytest.raises(ValueError, match=r"\[Generator.set_state\] expected a state of 16 bytes"):
        g.set_state(kiln.zeros(3, dtype=kiln.uint8))


def test_seed_functions():
    s = kiln.seed()
    assert isinstance(s, int) and kiln.initial_seed() == s
    g = kiln.Generator()
    t = g.seed()
    assert g.initial_seed() == t
    kiln.manual_seed(-1)  # negative seeds wrap, as in PyTorch
    assert kiln.initial_seed() == 2 ** 64 - 1
    kiln.manual_seed(2 ** 64 - 1)
    with pytest.raises(ValueError, match=r"\[manual_seed\] seed must be in"):
        kiln.manual_seed(2 ** 64)
    with pytest.raises(TypeError, match=r"\[Generator.manual_seed\] seed must be an int"):
        g.manual_seed(1.5)


def test_independent_of_thread_count():
    n0 = kiln.get_num_threads()
    try:
        outs = []
        for n in (1, max(2, n0)):
            kiln.set_num_threads(n)
            g = kiln.Generator().manual_seed(99)
            outs.append([kiln.rand(100003, generator=g), kiln.randn(70001, generator=g),
                         kiln.randint(0, 1000, (50001,), generator=g),
                         kiln.zeros(60000).bernoulli_(0.3, generator=g)])
        for a, b in zip(*outs):
            assert np.array_equal(a.numpy(), b.numpy())
    finally:
        kiln.set_num_threads(n0)


def test_values_do_not_depend_on_layout():
    g = kiln.Generator()
    g.manual_seed(3)
    a = kiln.empty(4, 6).uniform_(generator=g)
    g.manual_seed(3)
    b = kiln.empty(6, 4).transpose(0, 1).uniform_(generator=g)
    assert not b.is_contiguous()
    assert np.array_equal(a.numpy(), b.numpy())
    # Filling a view only touches the view.
    base = kiln.zeros(4, 6)
    base.transpose(0, 1).normal_()
    assert (base.numpy() != 0).all()


def test_float16_values_stay_below_one():
    g = kiln.Generator().manual_seed(0)
    for dt in (kiln.float16, kiln.bfloat16):
        assert _np(kiln.rand(100000, dtype=dt, generator=g)).max() < 1


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_normal_and_uniform_inplace(dtype):
    g = kiln.Generator().manual_seed(5)
    x = kiln.empty(20000, dtype=getattr(kiln, dtype))
    a = _np(x.normal_(3.0, 0.5, generator=g))
    assert abs(a.mean() - 3) < 0.02 and abs(a.std() - 0.5) < 0.02
    a = _np(x.uniform_(-2.0, 4.0, generator=g))
    assert a.min() >= -2 and a.max() <= 4 and abs(a.mean() - 1) < 0.05
    assert x.normal_(1.0, 0.0).tolist() == [1.0] * 20000
    assert x.uniform_(2.0, 2.0).tolist() == [2.0] * 20000
    x.uniform_(0, 1)
    assert x.normal_() is x and x.uniform_() is x


def test_inplace_random_errors_and_autograd():
    with pytest.raises(ValueError, match=r"\[normal_\] expects std >= 0.0"):
        kiln.empty(3).normal_(0, -1)
    with pytest.raises(ValueError, match=r"\[uniform_\] expects a \[from, to\) range"):
        kiln.empty(3).uniform_(2, 1)
    with pytest.raises(TypeError, match=r"\[normal_\] expected a floating point dtype"):
        kiln.zeros(3, dtype=kiln.int64).normal_()
    with pytest.raises(TypeError, match=r"\[uniform_\] expected a floating point dtype"):
        kiln.zeros(3, dtype=kiln.int32).uniform_()
    with pytest.raises(TypeError, match=r"\[rand\] expected a floating point dtype"):
        kiln.rand(3, dtype=kiln.int64)
    with pytest.raises(TypeError, match=r"\[randn\] expected a floating point dtype"):
        kiln.randn(3, dtype=kiln.bool)
    w = kiln.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"\[normal_\] a leaf Variable that requires grad"):
        w.normal_()
    with kiln.no_grad():
        w.normal_()  # the way nn.init fills parameters
    assert w.requires_grad and w.is_leaf and (w.detach().numpy() != 0).all()
    # On a non-leaf, the old value gets no gradient.
    x = kiln.ones(3, requires_grad=True)
    y = x * 2
    y.uniform_()
    (y * 3).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("dtype", ["int64", "int32", "int16", "int8", "uint8", "float32",
                                   "float64"])
def test_randint_in_range(dtype):
    g = kiln.Generator().manual_seed(4)
    x = kiln.randint(-3 if dtype != "uint8" else 0, 5, (5000,), generator=g,
                     dtype=getattr(kiln, dtype))
    assert x.dtype == getattr(kiln, dtype)
    vals = _np(x)
    lo = -3 if dtype != "uint8" else 0
    assert set(vals.tolist()) == set(range(lo, 5))
    counts = np.bincount((vals - lo).astype(np.int64))
    expected = 5000 / (5 - lo)
    assert np.all(np.abs(counts - expected) < 5 * math.sqrt(expected))


def test_randint_signatures_and_errors():
    assert kiln.randint(10, (3,)).dtype == kiln.int64
    assert kiln.randint(10, (2, 2)).shape == (2, 2)
    assert kiln.randint(3, 4, (5,)).tolist() == [3] * 5
    assert kiln.randint(5, size=(3,)).shape == (3,)
    assert kiln.randint(low=2, high=3, size=(2,)).tolist() == [2, 2]
    big = kiln.randint(-2 ** 63, 2 ** 63 - 1, (1000,))
    assert (big.numpy() < 0).any() and (big.numpy() > 0).any()
    with pytest.raises(ValueError, match=r"\[randint\] expected low < high, got low=5, high=5"):
        kiln.randint(5, 5, (2,))
    with pytest.raises(ValueError, match=r"\[random_\] range \[0, 300\) is out of bounds for uint8"):
        kiln.randint(0, 300, (2,), dtype=kiln.uint8)
    with pytest.raises(TypeError, match=r"\[randint\] expected randint\(high, size\)"):
        kiln.randint(5)
    with pytest.raises(TypeError, match=r"\[randint\] high must be an int"):
        kiln.randint(0, 2.5, (3,))


def test_random_inplace():
    g = kiln.Generator().manual_seed(8)
    x = kiln.zeros(3000, dtype=kiln.int64)
    assert set(x.random_(5, generator=g).tolist()) == {0, 1, 2, 3, 4}
    assert set(x.random_(-2, 2, generator=g).tolist()) == {-2, -1, 0, 1}
    assert set(x.random_(to=3, generator=g).tolist()) == {0, 1, 2}
    assert set(x.random_(2 ** 63 - 2, None).tolist()) == {2 ** 63 - 2, 2 ** 63 - 1}
    i8 = kiln.zeros(100, dtype=kiln.int8).random_(**{"from": 126})  # from= alone: [126, 127]
    assert set(i8.tolist()) == {126, 127}
    with pytest.raises(TypeError, match=r"\[random_\] got an unexpected keyword argument 'x'"):
        x.random_(x=1)
    b = kiln.zeros(1000, dtype=kiln.bool).random_(generator=g)
    assert 300 < b.numpy().sum() < 700
    u8 = kiln.zeros(5000, dtype=kiln.uint8).random_(generator=g).numpy()
    assert u8.min() < 10 and u8.max() > 245
    f = _np(kiln.zeros(5000).random_(generator=g))
    assert (f == np.round(f)).all() and f.max() > 2 ** 22 and f.max() <= 2 ** 24
    i8 = kiln.zeros(5000, dtype=kiln.int8).random_(generator=g).numpy()
    assert i8.min() >= 0 and i8.max() == 127
    with pytest.raises(ValueError, match=r"\[random_\] expects 'from' to be less than 'to'"):
        kiln.zeros(3, dtype=kiln.int64).random_(4, 2)
    with pytest.raises(ValueError, match=r"\[random_\] range \[-1, 10\) is out of bounds for uint8"):
        kiln.zeros(3, dtype=kiln.uint8).random_(-1, 10)


def test_randperm_is_permutation():
    g = kiln.Generator().manual_seed(6)
    for n in (0, 1, 2, 10, 1000):
        p = kiln.randperm(n, generator=g)
        assert p.dtype == kiln.int64 and p.shape == (n,)
        assert sorted(p.tolist()) == list(range(n))
    assert kiln.randperm(50, generator=g).tolist() != kiln.randperm(50, generator=g).tolist()
    assert sorted(kiln.randperm(20, dtype=kiln.float32).tolist()) == [float(i) for i in range(20)]
    assert sorted(kiln.randperm(100, dtype=kiln.int8).tolist()) == list(range(100))
    # Each value lands in each position about equally often.
    pos = np.zeros((4, 4))
    for _ in range(2000):
        pos[np.arange(4), kiln.randperm(4, generator=g).numpy()] += 1
    assert np.all(np.abs(pos - 500) < 100)
    with pytest.raises(ValueError, match=r"\[randperm\] n must be non-negative"):
        kiln.randperm(-1)
    with pytest.raises(ValueError, match=r"\[randperm\] n=300 is too large for int8"):
        kiln.randperm(300, dtype=kiln.int8)


def test_bernoulli():
    g = kiln.Generator().manual_seed(9)
    x = kiln.zeros(20000)
    assert abs(x.bernoulli_(0.3, generator=g).numpy().mean() - 0.3) < 0.015
    assert set(x.tolist()) == {0.0, 1.0}
    assert x.bernoulli_(0.0).numpy().sum() == 0 and x.bernoulli_(1.0).numpy().sum() == 20000
    p = kiln.tensor([0.0, 0.25, 1.0], dtype=kiln.float64)
    samples = np.stack([kiln.bernoulli(p, generator=g).numpy() for _ in range(2000)])
    assert samples.dtype == np.float64
    assert samples[:, 0].sum() == 0 and samples[:, 2].sum() == 2000
    assert abs(samples[:, 1].mean() - 0.25) < 0.04
    # p broadcasts over self; integer and bool outputs work.
    m = kiln.zeros(3000, 2, dtype=kiln.int64).bernoulli_(kiln.tensor([0.1, 0.9]), generator=g)
    assert np.abs(m.numpy().mean(axis=0) - [0.1, 0.9]).max() < 0.03
    assert kiln.zeros(4, dtype=kiln.bool).bernoulli_(1.0).tolist() == [True] * 4
    assert kiln.bernoulli(kiln.full((3,), 0.5), 1.0).tolist() == [1.0] * 3
    assert kiln.full((3,), 0.5).bernoulli().shape == (3,)
    with pytest.raises(ValueError, match=r"\[bernoulli_\] expects p to be in \[0, 1\]"):
        x.bernoulli_(1.5)
    with pytest.raises(ValueError, match=r"\[bernoulli\] expected all probabilities to be in"):
        kiln.bernoulli(kiln.tensor([0.5, 2.0]))
    with pytest.raises(TypeError, match=r"\[bernoulli\] expected a floating point dtype"):
        kiln.bernoulli(kiln.tensor([0, 1]))


def test_multinomial():
    g = kiln.Generator().manual_seed(10)
    w = kiln.tensor([1.0, 0.0, 3.0, 6.0])
    s = kiln.multinomial(w, 20000, replacement=True, generator=g).numpy()
    assert s.dtype == np.int64 and s.shape == (20000,)
    freq = np.bincount(s, minlength=4) / 20000
    assert freq[1] == 0 and np.abs(freq - [0.1, 0.0, 0.3, 0.6]).max() < 0.015
    rows = kiln.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 5.0, 0.0, 5.0]])
    for _ in range(50):
        d = rows.multinomial(2, generator=g).numpy()
        assert d.shape == (2, 2) and d[0, 0] != d[0, 1] and sorted(d[1]) == [1, 3]
    # Without replacement, the first draw follows the weights.
    first = [kiln.multinomial(w, 1, generator=g).item() for _ in range(3000)]
    assert np.abs(np.bincount(first, minlength=4) / 3000 - [0.1, 0, 0.3, 0.6]).max() < 0.03
    with pytest.raises(ValueError, match=r"\[multinomial\] cannot sample n_sample=5"):
        kiln.multinomial(w, 5)
    with pytest.raises(ValueError, match=r"\[multinomial\] row 0 has 3 non-zero probabilities"):
        kiln.multinomial(w, 4)
    with pytest.raises(ValueError, match=r"\[multinomial\] probability tensor contains"):
        kiln.multinomial(kiln.tensor([1.0, -1.0]), 1)
    with pytest.raises(ValueError, match=r"\[multinomial\] prob_dist must be 1 or 2 dim"):
        kiln.multinomial(kiln.ones(2, 2, 2), 1)
