"""kiln.optim.lr_scheduler reproduces torch's learning-rate sequences."""

import math
import warnings

import kiln
import numpy as np
import pytest
from compare import require_torch

torch = require_torch()
ksched = kiln.optim.lr_scheduler
tsched = torch.optim.lr_scheduler

STEPS = 30


def _optimizers(opt="SGD", groups=2, **kw):
    kp = [kiln.nn.Parameter(kiln.zeros(2)) for _ in range(groups)]
    tp = [torch.nn.Parameter(torch.zeros(2)) for _ in range(groups)]
    lrs = [0.1, 0.05, 0.02][:groups]
    ko = getattr(kiln.optim, opt)([{"params": [p], "lr": lr} for p, lr in zip(kp, lrs)], **kw)
    to = getattr(torch.optim, opt)([{"params": [p], "lr": lr} for p, lr in zip(tp, lrs)], **kw)
    return ko, to


class Scale:
    """A callable object: LambdaLR keeps its __dict__ in the state dict."""

    def __init__(self, factor):
        self.factor = factor

    def __call__(self, epoch):
        return self.factor**epoch


SIMPLE = {
    "StepLR": {"step_size": 4, "gamma": 0.5},
    "MultiStepLR": {"milestones": [3, 7, 7, 20], "gamma": 0.3},
    "ExponentialLR": {"gamma": 0.9},
    "CosineAnnealingLR": {"T_max": 7, "eta_min": 0.001},
    "CosineAnnealingWarmRestarts": {"T_0": 5, "T_mult": 2, "eta_min": 0.001},
    "LinearLR": {"start_factor": 0.2, "end_factor": 0.9, "total_iters": 8},
    "ConstantLR": {"factor": 0.4, "total_iters": 6},
    "PolynomialLR": {"total_iters": 12, "power": 2.0},
    "LambdaLR": {"lr_lambda": lambda e: 1.0 / (1 + e)},
    "MultiplicativeLR": {"lr_lambda": lambda e: 0.95},
    "OneCycleLR": {"max_lr": [1.0, 0.5], "total_steps": STEPS + 1},
}

EXTRA = [
    ("CosineAnnealingWarmRestarts", {"T_0": 3, "T_mult": 1}),
    (
        "OneCycleLR",
        {"max_lr": 0.8, "total_steps": STEPS + 1, "anneal_strategy": "linear", "three_phase": True},
    ),
    ("OneCycleLR", {"max_lr": 0.8, "epochs": 3, "steps_per_epoch": 11, "pct_start": 0.25}),
    ("LambdaLR", {"lr_lambda": [lambda e: 0.9**e, lambda e: 1 + e]}),
    ("StepLR", {"step_size": 1, "gamma": 0.9}),
]


def _sequence(sched, opt, steps=STEPS, metrics=None):
    lrs = [sched.get_last_lr()]
    for i in range(steps):
        opt.step()
        sched.step() if metrics is None else sched.step(metrics[i])
        lrs.append(list(sched.get_last_lr()))
        assert lrs[-1] == [g["lr"] for g in opt.param_groups]
    return lrs


def _assert_same(klrs, tlrs):
    np.testing.assert_allclose(
        np.array(klrs, dtype=float), np.array(tlrs, dtype=float), rtol=1e-12, atol=1e-15
    )


@pytest.mark.parametrize(
    "name,kw",
    list(SIMPLE.items()) + EXTRA,
    ids=[n for n in SIMPLE] + [f"{n}-{i}" for i, (n, _) in enumerate(EXTRA)],
)
def test_sequence_matches_torch(name, kw):
    ko, to = _optimizers()
    ks, ts = getattr(ksched, name)(ko, **kw), getattr(tsched, name)(to, **kw)
    _assert_same(_sequence(ks, ko), _sequence(ts, to))


def test_one_cycle_cycles_momentum_and_betas():
    for opt, kw in [("SGD", {"momentum": 0.9}), ("Adam", {})]:
        ko, to = _optimizers(opt, **kw)
        ks = ksched.OneCycleLR(ko, max_lr=1.0, total_steps=20)
        ts = tsched.OneCycleLR(to, max_lr=1.0, total_steps=20)
        key = "momentum" if opt == "SGD" else "betas"
        for _ in range(19):
            ko.step()
            to.step()
            ks.step()
            ts.step()
            assert [g[key] for g in ko.param_groups] == pytest.approx(
                [g[key] for g in to.param_groups]
            )
    with pytest.raises(ValueError, match="Tried to step"):
        ks.step()
        ks.step()


def test_chained_scheduler():
    ko, to = _optimizers()
    kc = ksched.ChainedScheduler(
        [ksched.ConstantLR(ko, factor=0.5, total_iters=4), ksched.ExponentialLR(ko, gamma=0.9)]
    )
    tc = tsched.ChainedScheduler(
        [tsched.ConstantLR(to, factor=0.5, total_iters=4), tsched.ExponentialLR(to, gamma=0.9)]
    )
    _assert_same(_sequence(kc, ko), _sequence(tc, to))


def test_sequential_lr():
    ko, to = _optimizers()
    ks = ksched.SequentialLR(
        ko,
        [
            ksched.LinearLR(ko, start_factor=0.1, total_iters=5),
            ksched.StepLR(ko, step_size=3, gamma=0.5),
            ksched.CosineAnnealingLR(ko, T_max=6),
        ],
        milestones=[5, 12],
    )
    ts = tsched.SequentialLR(
        to,
        [
            tsched.LinearLR(to, start_factor=0.1, total_iters=5),
            tsched.StepLR(to, step_size=3, gamma=0.5),
            tsched.CosineAnnealingLR(to, T_max=6),
        ],
        milestones=[5, 12],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _assert_same(_sequence(ks, ko), _sequence(ts, to))


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {
            "mode": "max",
            "threshold_mode": "abs",
            "patience": 2,
            "cooldown": 2,
            "factor": 0.5,
            "min_lr": [0.01, 0.02],
        },
        {"patience": 1, "threshold": 0.1, "min_lr": 0.004},
    ],
)
def test_reduce_lr_on_plateau(kw):
    metrics = [1.0, 0.9, 0.95, 0.95, 0.96, 0.9, 0.91, 0.92] * 4
    ko, to = _optimizers()
    ks, ts = ksched.ReduceLROnPlateau(ko, **kw), tsched.ReduceLROnPlateau(to, **kw)
    _assert_same(_sequence(ks, ko, len(metrics), metrics), _sequence(ts, to, len(metrics), metrics))
    assert ks.num_bad_epochs == ts.num_bad_epochs and ks.best == ts.best


@pytest.mark.parametrize("name,kw", list(SIMPLE.items()), ids=list(SIMPLE))
def test_state_dict_round_trip(name, kw):
    """Saving after 10 steps and loading into a fresh scheduler continues the sequence."""
    if name in ("LambdaLR", "MultiplicativeLR"):
        kw = {"lr_lambda": Scale(0.9)}
    ko, _ = _optimizers()
    ks = getattr(ksched, name)(ko, **kw)
    _sequence(ks, ko, 10)
    state = ks.state_dict()
    assert "optimizer" not in state
    opt_state = ko.state_dict()
    expected = _sequence(ks, ko, 10)

    ko2, _ = _optimizers()
    ko2.load_state_dict(opt_state)
    ks2 = getattr(ksched, name)(ko2, **kw)
    ks2.load_state_dict(state)
    for g, lr in zip(ko2.param_groups, state["_last_lr"]):
        g["lr"] = lr
    _assert_same(_sequence(ks2, ko2, 10), expected)


def test_lambda_state_dict_keeps_callable_objects_state():
    ko, _ = _optimizers()
    ks = ksched.LambdaLR(ko, lr_lambda=[Scale(0.5), lambda e: 1.0])
    state = ks.state_dict()
    assert state["lr_lambdas"] == [{"factor": 0.5}, None]
    other = ksched.LambdaLR(ko, lr_lambda=[Scale(0.1), lambda e: 1.0])
    other.load_state_dict(state)
    assert other.lr_lambdas[0].factor == 0.5


def test_composite_state_dicts():
    ko, _ = _optimizers()
    ks = ksched.SequentialLR(
        ko,
        [ksched.ConstantLR(ko, factor=0.5, total_iters=2), ksched.ExponentialLR(ko, gamma=0.9)],
        milestones=[3],
    )
    for _ in range(5):
        ks.step()
    state = ks.state_dict()
    assert len(state["_schedulers"]) == 2 and state["last_epoch"] == 5
    ko2, _ = _optimizers()
    ks2 = ksched.SequentialLR(
        ko2,
        [ksched.ConstantLR(ko2, factor=0.5, total_iters=2), ksched.ExponentialLR(ko2, gamma=0.9)],
        milestones=[3],
    )
    ks2.load_state_dict(state)
    assert (
        ks2.last_epoch == 5
        and ks2._schedulers[1].last_epoch == state["_schedulers"][1]["last_epoch"]
    )


def test_closed_form_with_explicit_epoch():
    ko, to = _optimizers()
    ks, ts = ksched.StepLR(ko, step_size=3, gamma=0.5), tsched.StepLR(to, step_size=3, gamma=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for e in [4, 9, 2]:
            ks.step(e)
            ts.step(e)
            assert ks.get_last_lr() == pytest.approx(ts.get_last_lr())


def test_cosine_warm_restarts_fractional_epochs():
    ko, to = _optimizers()
    ks = ksched.CosineAnnealingWarmRestarts(ko, T_0=4, T_mult=2)
    ts = tsched.CosineAnnealingWarmRestarts(to, T_0=4, T_mult=2)
    for e in [0.5, 1.25, 3.9, 4.0, 7.5, 13.0, 30.2]:
        ks.step(e)
        ts.step(e)
        assert ks.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12)
        assert ks.T_i == ts.T_i and math.isclose(ks.T_cur, ts.T_cur)


def test_errors():
    ko, _ = _optimizers()
    with pytest.raises(ValueError, match="between 0 and 1"):
        ksched.ConstantLR(ko, factor=2.0)
    with pytest.raises(ValueError, match="T_0"):
        ksched.CosineAnnealingWarmRestarts(ko, T_0=0)
    with pytest.raises(ValueError, match="total_steps OR"):
        ksched.OneCycleLR(ko, max_lr=1.0)
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas"):
        ksched.LambdaLR(ko, lr_lambda=[lambda e: 1.0])
    with pytest.raises(ValueError, match="Factor should be < 1.0"):
        ksched.ReduceLROnPlateau(ko, factor=1.0)
    with pytest.raises(ValueError, match="number of milestone points"):
        ksched.SequentialLR(ko, [ksched.StepLR(ko, 2)], milestones=[3])
    with pytest.raises(KeyError, match="initial_lr"):
        ksched.StepLR(kiln.optim.SGD([kiln.nn.Parameter(kiln.ones(1))], lr=0.1), 2, last_epoch=3)
