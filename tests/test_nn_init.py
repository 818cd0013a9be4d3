"""kiln.nn.init: bounds, statistics and gains as torch.nn.init."""

import math

import kiln
import numpy as np
import pytest
from compare import require_torch

torch = require_torch()
init = kiln.nn.init


@pytest.mark.parametrize(
    "nonlinearity,param",
    [
        ("linear", None),
        ("conv2d", None),
        ("sigmoid", None),
        ("tanh", None),
        ("relu", None),
        ("leaky_relu", None),
        ("leaky_relu", 0.2),
        ("selu", None),
        ("conv_transpose1d", None),
    ],
)
def test_calculate_gain_matches_torch(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(
        torch.nn.init.calculate_gain(nonlinearity, param)
    )


def test_calculate_gain_errors():
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="not a valid number"):
        init.calculate_gain("leaky_relu", True)


def _bound_of(fn, shape, **kw):
    """The support bound torch's initialiser gives this shape (max |value| over a big draw
    is close to it); we compare our bound through the formula instead."""
    t = torch.empty(shape)
    fn(t, **kw)
    return t.abs().max().item()


@pytest.mark.parametrize("shape", [(64, 32), (16, 8, 3, 3), (10, 7, 5)])
def test_uniform_family_bounds(shape):
    fan_in = shape[1] * int(np.prod(shape[2:]))
    fan_out = shape[0] * int(np.prod(shape[2:]))
    cases = [
        (
            init.xavier_uniform_,
            torch.nn.init.xavier_uniform_,
            {"gain": 2.0},
            2.0 * math.sqrt(6.0 / (fan_in + fan_out)),
        ),
        (
            init.kaiming_uniform_,
            torch.nn.init.kaiming_uniform_,
            {"a": math.sqrt(5)},
            math.sqrt(6.0 / ((1 + 5) * fan_in)),
        ),
        (
            init.kaiming_uniform_,
            torch.nn.init.kaiming_uniform_,
            {"mode": "fan_out", "nonlinearity": "relu"},
            math.sqrt(6.0 / fan_out),
        ),
    ]
    for kfn, tfn, kw, bound in cases:
        t = kiln.empty(*shape)
        assert kfn(t, **kw) is t
        a = t.numpy()
        assert np.abs(a).max() <= bound * (1 + 1e-6)
        assert np.abs(a).max() > 0.8 * bound
        assert _bound_of(tfn, shape, **kw) <= bound * (1 + 1e-6)
        assert abs(a.mean()) < 0.1 * bound


@pytest.mark.parametrize("shape", [(256, 128), (64, 16, 3, 3)])
def test_normal_family_std(shape):
    fan_in = shape[1] * int(np.prod(shape[2:]))
    fan_out = shape[0] * int(np.prod(shape[2:]))
    cases = [
        (init.xavier_normal_, {"gain": 0.5}, 0.5 * math.sqrt(2.0 / (fan_in + fan_out))),
        (init.kaiming_normal_, {"nonlinearity": "relu"}, math.sqrt(2.0 / fan_in)),
        (
            init.kaiming_normal_,
            {"mode": "fan_out", "nonlinearity": "tanh"},
            5.0 / 3 / math.sqrt(fan_out),
        ),
        (init.normal_, {"mean": 1.0, "std": 0.3}, 0.3),
    ]
    for fn, kw, std in cases:
        a = fn(kiln.empty(*shape), **kw).numpy()
        assert a.std() == pytest.approx(std, rel=0.05)
        assert a.mean() == pytest.approx(kw.get("mean", 0.0), abs=0.05 * std + 1e-3)


def test_uniform_normal_constant_ones_zeros_eye():
    t = init.uniform_(kiln.empty(1000), -0.5, 2.0).numpy()
    assert t.min() >= -0.5 and t.max() < 2.0 and t.mean() == pytest.approx(0.75, abs=0.1)
    assert init.constant_(kiln.empty(2, 2), 0.3).tolist() == [[pytest.approx(0.3)] * 2] * 2
    assert init.ones_(kiln.empty(3)).tolist() == [1.0] * 3
    assert init.zeros_(kiln.empty(3)).tolist() == [0.0] * 3
    np.testing.assert_array_equal(init.eye_(kiln.empty(3, 4)).numpy(), np.eye(3, 4))
    with pytest.raises(ValueError, match="2 dimensions"):
        init.eye_(kiln.empty(3))


def test_trunc_normal_stays_in_range():
    t = init.trunc_normal_(kiln.empty(20000), mean=0.5, std=1.0, a=-0.5, b=1.0).numpy()
    assert t.min() >= -0.5 and t.max() <= 1.0
    # Mean of N(0.5, 1) truncated to [-0.5, 1.0] (the same for torch's sampler).
    ref = torch.nn.init.trunc_normal_(torch.empty(200000), 0.5, 1.0, -0.5, 1.0)
    assert t.mean() == pytest.approx(ref.mean().item(), abs=0.02)
    narrow = init.trunc_normal_(kiln.empty(100), std=1.0, a=5.0, b=5.1).numpy()
    assert narrow.min() >= 5.0 and narrow.max() <= 5.1


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (5, 2, 3)])
def test_orthogonal(shape):
    t = init.orthogonal_(kiln.empty(*shape), gain=2.0).numpy().reshape(shape[0], -1)
    rows, cols = t.shape
    gram = t @ t.T if rows <= cols else t.T @ t
    np.testing.assert_allclose(gram, 4.0 * np.eye(min(rows, cols)), atol=1e-5)
    with pytest.raises(ValueError, match="2 or more dimensions"):
        init.orthogonal_(kiln.empty(3))


def test_generator_makes_init_reproducible_and_no_grad():
    p = kiln.nn.Parameter(kiln.empty(5, 5))
    a = init.kaiming_uniform_(p, generator=kiln.Generator().manual_seed(3)).tolist()
    b = init.kaiming_uniform_(p, generator=kiln.Generator().manual_seed(3)).tolist()
    assert a == b and p.is_leaf and p.grad_fn is None
    kiln.manual_seed(7)
    c = init.normal_(kiln.empty(4)).tolist()
    kiln.manual_seed(7)
    assert init.normal_(kiln.empty(4)).tolist() == c


def test_fan_errors():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(kiln.empty(3))
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_normal_(kiln.empty(3, 3), mode="fan_avg")
    with pytest.warns(UserWarning, match="zero-element"):
        init.kaiming_uniform_(kiln.empty(0, 3))
