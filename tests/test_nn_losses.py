"""Loss functions and loss modules vs torch, for every reduction."""

import kiln
import kiln.nn.functional as F
import numpy as np
import pytest
from compare import assert_close, require_torch
from kiln import nn
from nn_compare import compare

torch = require_torch()
pytestmark = pytest.mark.filterwarnings("ignore:reduction. .mean. divides:UserWarning")
TF = torch.nn.functional
DTYPES = ["float64", "float32"]
REDUCTIONS = ["mean", "sum", "none"]


def arr(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def probs(*shape, seed=0):
    return np.random.default_rng(seed).uniform(0.05, 0.95, shape)


def signs(*shape, seed=5):
    return np.where(np.random.default_rng(seed).random(shape) > 0.5, 1.0, -1.0)


# (kiln/torch name, module name, kwargs, input arrays; the last ones are targets without grad)
CASES = [
    ("mse_loss", "MSELoss", {}, lambda: [arr(3, 4), arr(3, 4, seed=1)]),
    ("l1_loss", "L1Loss", {}, lambda: [arr(3, 4), arr(3, 4, seed=1)]),
    ("smooth_l1_loss", "SmoothL1Loss", {}, lambda: [arr(3, 4), arr(3, 4, seed=1)]),
    ("smooth_l1_loss", "SmoothL1Loss", {"beta": 0.3}, lambda: [arr(3, 4), arr(3, 4, seed=1)]),
    ("smooth_l1_loss", "SmoothL1Loss", {"beta": 0.0}, lambda: [arr(3, 4), arr(3, 4, seed=1)]),
    ("huber_loss", "HuberLoss", {}, lambda: [arr(3, 4) * 2, arr(3, 4, seed=1)]),
    ("huber_loss", "HuberLoss", {"delta": 0.4}, lambda: [arr(3, 4) * 2, arr(3, 4, seed=1)]),
    ("binary_cross_entropy", "BCELoss", {}, lambda: [probs(3, 4), probs(3, 4, seed=1)]),
    (
        "binary_cross_entropy_with_logits",
        "BCEWithLogitsLoss",
        {},
        lambda: [arr(3, 4) * 5, probs(3, 4, seed=1)],
    ),
    ("kl_div", "KLDivLoss", {}, lambda: [np.log(probs(3, 4)), probs(3, 4, seed=1)]),
    (
        "kl_div",
        "KLDivLoss",
        {"log_target": True},
        lambda: [np.log(probs(3, 4)), np.log(probs(3, 4, seed=1))],
    ),
    (
        "cosine_embedding_loss",
        "CosineEmbeddingLoss",
        {},
        lambda: [arr(5, 4), arr(5, 4, seed=1), signs(5)],
    ),
    (
        "cosine_embedding_loss",
        "CosineEmbeddingLoss",
        {"margin": -0.2},
        lambda: [arr(5, 4), arr(5, 4, seed=1), signs(5)],
    ),
    (
        "margin_ranking_loss",
        "MarginRankingLoss",
        {"margin": 0.5},
        lambda: [arr(6), arr(6, seed=1), signs(6)],
    ),
    (
        "triplet_margin_loss",
        "TripletMarginLoss",
        {},
        lambda: [arr(5, 4), arr(5, 4, seed=1), arr(5, 4, seed=2)],
    ),
    (
        "triplet_margin_loss",
        "TripletMarginLoss",
        {"p": 1.0, "margin": 2.0, "swap": True},
        lambda: [arr(5, 4), arr(5, 4, seed=1), arr(5, 4, seed=2)],
    ),
]
N_TARGETS = {"cosine_embedding_loss": 1, "margin_ranking_loss": 1, "triplet_margin_loss": 0}


def _split(name, arrays):
    """Inputs with grad and trailing targets (passed as constants)."""
    n = N_TARGETS.get(name, 1)
    return (arrays[: len(arrays) - n], arrays[len(arrays) - n :]) if n else (arrays, [])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,modname,kw,make", CASES)
def test_functional_loss(dtype, reduction, name, modname, kw, make):
    inputs, targets = _split(name, make())
    kt = [kiln.tensor(t.astype(dtype)) for t in targets]
    tt = [torch.tensor(t.astype(dtype)) for t in targets]
    compare(
        lambda *x: getattr(F, name)(*x, *kt, reduction=reduction, **kw),
        lambda *x: getattr(TF, name)(*x, *tt, reduction=reduction, **kw),
        inputs,
        dtype,
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,modname,kw,make", CASES)
def test_loss_module(reduction, name, modname, kw, make):
    inputs, targets = _split(name, make())
    kmod = getattr(nn, modname)(reduction=reduction, **kw)
    tmod = getattr(torch.nn, modname)(reduction=reduction, **kw)
    kt = [kiln.tensor(t) for t in targets]
    tt = [torch.tensor(t) for t in targets]
    compare(lambda *x: kmod(*x, *kt), lambda *x: tmod(*x, *tt), inputs)


def test_kl_div_batchmean():
    x, t = np.log(probs(3, 4)), probs(3, 4, seed=1)
    compare(
        lambda a: F.kl_div(a, kiln.tensor(t), reduction="batchmean"),
        lambda a: TF.kl_div(a, torch.tensor(t), reduction="batchmean"),
        [x],
    )


def test_kl_div_zero_target():
    x, t = np.log(probs(2, 3)), probs(2, 3, seed=1)
    t[0, 1] = 0.0
    compare(
        lambda a: F.kl_div(a, kiln.tensor(t), reduction="sum"),
        lambda a: TF.kl_div(a, torch.tensor(t), reduction="sum"),
        [x],
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_weight(dtype):
    w = probs(4, seed=7)
    compare(
        lambda x, t: F.binary_cross_entropy(x, t, weight=kiln.tensor(w.astype(dtype))),
        lambda x, t: TF.binary_cross_entropy(x, t, weight=torch.tensor(w.astype(dtype))),
        [probs(3, 4), probs(3, 4, seed=1)],
        dtype,
    )
    kmod, tmod = nn.BCELoss(weight=kiln.tensor(w)), torch.nn.BCELoss(weight=torch.tensor(w))
    compare(kmod, tmod, [probs(3, 4), probs(3, 4, seed=1)])


def test_bce_clamps_log():
    x = np.array([0.0, 1.0, 0.5])
    t = np.array([1.0, 0.0, 0.5])
    assert_close(
        F.binary_cross_entropy(kiln.tensor(x), kiln.tensor(t), reduction="none"),
        TF.binary_cross_entropy(torch.tensor(x), torch.tensor(t), reduction="none"),
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_weights(dtype, reduction):
    w, pw = probs(4, seed=7), probs(4, seed=8) * 3
    kw = {"weight": kiln.tensor(w.astype(dtype)), "pos_weight": kiln.tensor(pw.astype(dtype))}
    tw = {"weight": torch.tensor(w.astype(dtype)), "pos_weight": torch.tensor(pw.astype(dtype))}
    compare(
        lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction=reduction, **kw),
        lambda x, t: TF.binary_cross_entropy_with_logits(x, t, reduction=reduction, **tw),
        [arr(3, 4) * 4, probs(3, 4, seed=1)],
        dtype,
    )
    kmod = nn.BCEWithLogitsLoss(pos_weight=kiln.tensor(pw))
    tmod = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pw))
    compare(kmod, tmod, [arr(3, 4), probs(3, 4, seed=1)])


def test_bce_with_logits_extreme_logits_stable():
    x = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    t = np.array([1.0, 0.0, 0.3, 1.0, 0.0])
    compare(
        lambda a: F.binary_cross_entropy_with_logits(a, kiln.tensor(t), reduction="none"),
        lambda a: TF.binary_cross_entropy_with_logits(a, torch.tensor(t), reduction="none"),
        [x],
    )


def test_legacy_reduction_flags():
    assert nn.MSELoss(size_average=False).reduction == "sum"
    assert nn.L1Loss(reduce=False).reduction == "none"


def test_bad_reduction_and_shapes():
    x = kiln.randn(3)
    with pytest.raises(ValueError, match=r"\[mse_loss\].*reduction"):
        F.mse_loss(x, x, reduction="avg")
    with pytest.raises(ValueError, match=r"\[binary_cross_entropy\].*size"):
        F.binary_cross_entropy(kiln.rand(3), kiln.rand(2, 3))


@pytest.mark.parametrize(
    "fn,shapes",
    [
        (lambda a, b: F.smooth_l1_loss(a, b, beta=0.5), [(3, 4), (3, 4)]),
        (lambda a, b: F.huber_loss(a, b, delta=0.5), [(3, 4), (3, 4)]),
        (lambda a, b: F.binary_cross_entropy_with_logits(a, b.sigmoid()), [(3, 4), (3, 4)]),
        (lambda a, b, c: F.triplet_margin_loss(a, b, c), [(3, 4), (3, 4), (3, 4)]),
        (lambda a, b: F.kl_div(a, b, log_target=True), [(3, 4), (3, 4)]),
    ],
)
def test_loss_gradcheck(fn, shapes):
    inputs = [kiln.tensor(arr(*s, seed=i)).requires_grad_(True) for i, s in enumerate(shapes)]
    assert kiln.autograd.gradcheck(fn, inputs)


def test_loss_module_target_shape_error_names_module():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.criterion = nn.MSELoss()

        def forward(self, x, y):
            return self.criterion(x, y)

    with pytest.raises(nn.ModuleShapeError, match=r"^criterion \(MSELoss\): .*target shape \[4\]"):
        Net()(kiln.randn(4, 1), kiln.randn(4))
    with pytest.raises(nn.ModuleShapeError, match=r"^BCEWithLogitsLoss: "):
        nn.BCEWithLogitsLoss()(kiln.randn(3, 2), kiln.rand(3))


@pytest.mark.filterwarnings("ignore:Using a target size:UserWarning")
def test_functional_loss_broadcast_warns_like_torch():
    x, y = arr(4, 1), arr(4, seed=1)
    with pytest.warns(UserWarning, match=r"\[mse_loss\] target size"):
        out = F.mse_loss(kiln.tensor(x), kiln.tensor(y))
    assert_close(out, TF.mse_loss(torch.tensor(x), torch.tensor(y)))
