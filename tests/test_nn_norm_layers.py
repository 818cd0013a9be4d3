"""kiln.nn normalization, dropout, embedding and classification-loss layers vs torch.nn:
same weights, same outputs, gradients, running statistics, state_dict keys and reprs."""

import kiln
import numpy as np
import pytest
from compare import assert_close, require_torch
from kiln import nn
from kiln.nn import functional as F
from nn_compare import TOL, compare, compare_module, copy_module

torch = require_torch()
tnn = torch.nn
TF = torch.nn.functional
DTYPES = ["float64", "float32"]


def arr(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def randomize(tmod, seed=3):
    """Random affine parameters and running stats, so copying them tests more than ones/zeros."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in tmod.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
        for name, b in tmod.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
    return tmod


def compare_norm(kmod, tmod, arrays, dtype):
    return compare_module(kmod, randomize(tmod), arrays, dtype)


# ---- LayerNorm / RMSNorm / GroupNorm -----------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "shape,kw",
    [
        ((4,), {}),
        ((3, 4), {"eps": 1e-3}),
        ((4,), {"elementwise_affine": False}),
        ((4,), {"bias": False}),
    ],
)
def test_layer_norm(dtype, shape, kw):
    x = arr(2, 5, *shape)
    compare_norm(nn.LayerNorm(shape, **kw), tnn.LayerNorm(shape, **kw), [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "shape,kw", [((4,), {}), ((3, 4), {"eps": 1e-4}), (4, {"elementwise_affine": False})]
)
def test_rms_norm(dtype, shape, kw):
    compare_norm(nn.RMSNorm(shape, **kw), tnn.RMSNorm(shape, **kw), [arr(2, 3, 4)], dtype)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_rms_norm_default_eps_of_16_bit_inputs_is_float32s(dtype):
    # Small inputs make eps matter: PyTorch uses float32's epsilon (the statistics' type).
    torch = require_torch()
    x = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32) * 1e-3
    got = F.rms_norm(kiln.tensor(x).to(getattr(kiln, dtype)), (8,)).float()
    want = torch.nn.functional.rms_norm(torch.tensor(x).to(getattr(torch, dtype)), (8,)).float()
    assert_close(got, want, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "groups,kw", [(2, {}), (1, {"eps": 1e-3}), (3, {"affine": False}), (2, {"bias": False})]
)
@pytest.mark.parametrize("shape", [(3, 6), (2, 6, 5), (2, 6, 3, 4)])
def test_group_norm(dtype, groups, kw, shape):
    compare_norm(
        nn.GroupNorm(groups, 6, **kw), tnn.GroupNorm(groups, 6, **kw), [arr(*shape)], dtype
    )


# ---- BatchNorm -----------------------------------------------------------------------------

BN_KW = [
    {},
    {"bias": False},
    {"momentum": None},
    {"momentum": 0.3, "eps": 1e-3},
    {"affine": False},
    {"track_running_stats": False},
]


def _bn_pair(cls, kw, dtype):
    kmod, tmod = getattr(nn, cls)(3, **kw), getattr(tnn, cls)(3, **kw)
    return copy_module(kmod, randomize(tmod), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", BN_KW)
@pytest.mark.parametrize(
    "cls,shape",
    [("BatchNorm1d", (6, 3)), ("BatchNorm1d", (4, 3, 5)), ("BatchNorm2d", (2, 3, 4, 5))],
)
def test_batch_norm_training_steps(dtype, kw, cls, shape):
    """Outputs and gradients in train mode over several steps; running stats and
    num_batches_tracked follow torch's, then eval mode uses them."""
    kmod, tmod = _bn_pair(cls, kw, dtype)
    tol = TOL[dtype]
    for step in range(4):
        compare(kmod, tmod, [arr(*shape, seed=step) * 2 + 1], dtype, True, kmod, tmod)
        kmod.zero_grad()
        tmod.zero_grad()
        for (kn, kb), (tn, tb) in zip(kmod.named_buffers(), tmod.named_buffers()):
            assert kn == tn
            assert_close(kb, tb, **tol)
    kmod.eval()
    tmod.eval()
    compare(kmod, tmod, [arr(*shape, seed=9)], dtype, True, kmod, tmod)
    assert list(kmod.state_dict()) == list(tmod.state_dict())


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_eval_uses_running_stats(dtype):
    kmod, tmod = _bn_pair("BatchNorm2d", {}, dtype)
    kmod.eval()
    tmod.eval()
    before = kmod.running_mean.clone()
    compare(kmod, tmod, [arr(2, 3, 4, 4)], dtype, True, kmod, tmod)
    assert_close(kmod.running_mean, before)
    assert int(kmod.num_batches_tracked.item()) == 0


def test_batch_norm_cumulative_average():
    """momentum=None keeps the plain average of all batch statistics seen."""
    m = nn.BatchNorm1d(2, momentum=None)
    xs = [arr(8, 2, seed=s) + s for s in range(3)]
    for x in xs:
        m(kiln.tensor(x.astype("float32")))
    mean = np.mean([x.mean(0) for x in xs], axis=0)
    var = np.mean([x.var(0, ddof=1) for x in xs], axis=0)
    assert np.allclose(m.running_mean.numpy(), mean, atol=1e-6)
    assert np.allclose(m.running_var.numpy(), var, atol=1e-6)
    assert int(m.num_batches_tracked.item()) == 3


def test_batch_norm_state_dict_and_old_checkpoint():
    for kw in BN_KW:
        for cls in ["BatchNorm1d", "BatchNorm2d"]:
            k, t = getattr(nn, cls)(4, **kw), getattr(tnn, cls)(4, **kw)
            assert list(k.state_dict()) == list(t.state_dict())
            assert [n for n, _ in k.named_parameters()] == [n for n, _ in t.named_parameters()]
    m = nn.BatchNorm1d(2)
    old = {k: v for k, v in m.state_dict().items() if k != "num_batches_tracked"}
    m.num_batches_tracked.add_(5)
    m.load_state_dict(old)
    assert int(m.num_batches_tracked.item()) == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_functional_batch_norm(dtype):
    x = arr(5, 3, 2)
    rm, rv = arr(3, seed=1), np.abs(arr(3, seed=2)) + 0.5
    km, kv = kiln.tensor(rm.astype(dtype)), kiln.tensor(rv.astype(dtype))
    tm, tv = torch.tensor(rm.astype(dtype)), torch.tensor(rv.astype(dtype))
    compare(
        lambda x, w, b: F.batch_norm(x, km, kv, w, b, True, 0.2, 1e-4),
        lambda x, w, b: TF.batch_norm(x, tm, tv, w, b, True, 0.2, 1e-4),
        [x, arr(3, seed=3), arr(3, seed=4)],
        dtype,
    )
    assert_close(km, tm, **TOL[dtype])
    assert_close(kv, tv, **TOL[dtype])
    compare(lambda x: F.batch_norm(x, km, kv), lambda x: TF.batch_norm(x, tm, tv), [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_functional_norms(dtype):
    x = arr(2, 6, 4)
    w, b = arr(4, seed=1), arr(4, seed=2)
    compare(
        lambda x, w, b: F.layer_norm(x, (4,), w, b, 1e-4),
        lambda x, w, b: TF.layer_norm(x, (4,), w, b, 1e-4),
        [x, w, b],
        dtype,
    )
    compare(
        lambda x, w: F.rms_norm(x, [6, 4], w),
        lambda x, w: TF.rms_norm(x, [6, 4], w),
        [x, arr(6, 4, seed=3)],
        dtype,
    )
    compare(
        lambda x, w, b: F.group_norm(x, 3, w, b),
        lambda x, w, b: TF.group_norm(x, 3, w, b),
        [x, arr(6, seed=4), arr(6, seed=5)],
        dtype,
    )


# ---- Dropout -------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_dropout_statistics(p):
    kiln.manual_seed(0)
    m = nn.Dropout(p)
    x = kiln.ones(200, 500)
    y = m(x).numpy()
    kept = y != 0
    assert abs(kept.mean() - (1 - p)) < 0.01
    assert np.allclose(y[kept], 1 / (1 - p))
    m.eval()
    assert np.array_equal(m(x).numpy(), x.numpy())


def test_dropout_gradient_matches_mask():
    kiln.manual_seed(1)
    x = kiln.ones(50, 40, requires_grad=True)
    y = nn.Dropout(0.3)(x)
    y.sum().backward()
    assert np.allclose(x.grad.numpy(), y.detach().numpy())


@pytest.mark.parametrize("p", [0.25, 0.6])
def test_dropout2d_drops_whole_channels(p):
    kiln.manual_seed(2)
    m = nn.Dropout2d(p)
    y = m(kiln.ones(40, 50, 3, 4)).numpy()
    per_channel = y.reshape(40, 50, -1)
    assert np.all((per_channel == 0).all(-1) | (per_channel != 0).all(-1))
    kept = per_channel[:, :, 0] != 0
    assert abs(kept.mean() - (1 - p)) < 0.03
    assert np.allclose(per_channel[kept], 1 / (1 - p))
    m.eval()
    assert np.array_equal(m(kiln.ones(2, 3, 4, 4)).numpy(), np.ones((2, 3, 4, 4)))


def test_dropout2d_3d_input_masks_rows():
    kiln.manual_seed(3)
    y = nn.Dropout2d(0.5)(kiln.ones(30, 20, 6)).numpy()
    assert np.all((y == 0).all(-1) | (y != 0).all(-1))


def test_dropout_edge_cases():
    x = kiln.randn(4, 5)
    assert np.array_equal(F.dropout(x, 0.0).numpy(), x.numpy())
    assert np.array_equal(F.dropout(x, 1.0).numpy(), np.zeros((4, 5)))
    assert np.array_equal(F.dropout(x, 0.5, training=False).numpy(), x.numpy())
    y = kiln.ones(3, 3)
    assert F.dropout(y, 0.5, inplace=True) is y
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match=r"\[dropout\].*between 0 and 1"):
        F.dropout(x, -0.1)


# ---- Embedding -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding(dtype, padding_idx):
    k, t = copy_module(
        nn.Embedding(7, 4, padding_idx=padding_idx),
        tnn.Embedding(7, 4, padding_idx=padding_idx),
        dtype,
    )
    idx = np.array([[0, 2, 6], [2, 2, 1]])
    ko, to = k(kiln.tensor(idx)), t(torch.tensor(idx))
    assert_close(ko, to, **TOL[dtype])
    g = arr(2, 3, 4).astype(dtype)
    (ko * kiln.tensor(g)).sum().backward()
    (to * torch.tensor(g)).sum().backward()
    assert_close(k.weight.grad, t.weight.grad, **TOL[dtype])


def test_embedding_init_and_from_pretrained():
    kiln.manual_seed(0)
    m = nn.Embedding(1000, 20, padding_idx=3)
    w = m.weight.detach().numpy()
    assert np.all(w[3] == 0)
    rest = np.delete(w, 3, axis=0)
    assert abs(rest.mean()) < 0.02 and abs(rest.std() - 1) < 0.02
    pre = kiln.tensor(arr(5, 3))
    e = nn.Embedding.from_pretrained(pre)
    assert not e.weight.requires_grad
    assert np.array_equal(e(kiln.tensor([4, 0])).numpy(), pre.numpy()[[4, 0]])
    assert nn.Embedding.from_pretrained(pre, freeze=False).weight.requires_grad
    with pytest.raises(ValueError, match="2-D"):
        nn.Embedding.from_pretrained(kiln.randn(3))


def test_embedding_max_norm():
    k, t = copy_module(nn.Embedding(6, 3, max_norm=1.0), tnn.Embedding(6, 3, max_norm=1.0))
    idx = np.array([1, 4, 4, 0])
    assert_close(k(kiln.tensor(idx)), t(torch.tensor(idx)))
    assert_close(k.weight, t.weight)


# ---- CrossEntropyLoss / NLLLoss ------------------------------------------------------------

CE_KW = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"ignore_index": 1},
    {"label_smoothing": 0.2},
    {"weight": True, "ignore_index": 0, "label_smoothing": 0.1},
]


def _loss_pair(cls, kw, dtype, classes):
    kw = dict(kw)
    kkw, tkw = dict(kw), dict(kw)
    if kw.get("weight"):
        w = np.abs(arr(classes, seed=7)).astype(dtype) + 0.1
        kkw["weight"], tkw["weight"] = kiln.tensor(w), torch.tensor(w)
    return getattr(nn, cls)(**kkw), getattr(tnn, cls)(**tkw)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", CE_KW)
@pytest.mark.parametrize("shape", [(6, 4), (2, 4, 3), (4,)])
def test_cross_entropy_indices(dtype, kw, shape):
    k, t = _loss_pair("CrossEntropyLoss", kw, dtype, 4)
    target = np.random.default_rng(1).integers(
        0, 4, size=shape[:1] + shape[2:] if len(shape) > 1 else ()
    )
    ktarget, ttarget = kiln.tensor(target), torch.tensor(target)
    compare(lambda x: k(x, ktarget), lambda x: t(x, ttarget), [arr(*shape)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", [{}, {"label_smoothing": 0.3, "reduction": "sum"}])
def test_cross_entropy_probabilities(dtype, kw):
    k, t = nn.CrossEntropyLoss(**kw), tnn.CrossEntropyLoss(**kw)
    probs = np.random.default_rng(2).dirichlet(np.ones(5), size=6).astype(dtype)
    compare(
        lambda x: k(x, kiln.tensor(probs)), lambda x: t(x, torch.tensor(probs)), [arr(6, 5)], dtype
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", [k for k in CE_KW if "label_smoothing" not in k])
@pytest.mark.parametrize("shape", [(6, 4), (2, 4, 3)])
def test_nll_loss(dtype, kw, shape):
    k, t = _loss_pair("NLLLoss", kw, dtype, 4)
    target = np.random.default_rng(3).integers(0, 4, size=shape[:1] + shape[2:])
    ktarget, ttarget = kiln.tensor(target), torch.tensor(target)
    logp = np.log(np.random.default_rng(4).dirichlet(np.ones(4), size=int(np.prod(shape)) // 4))
    x = logp.reshape(shape[0], *shape[2:], 4)
    x = np.moveaxis(x, -1, 1)
    compare(lambda x: k(x, ktarget), lambda x: t(x, ttarget), [x], dtype)


@pytest.mark.filterwarnings("ignore:size_average and reduce")
@pytest.mark.parametrize("kw", [{"size_average": False}, {"reduce": False}, {"reduction": "sum"}])
@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_functional_losses_legacy_flags(kw, name):
    x, target = arr(5, 3), np.array([0, 2, 1, 1, 0])
    compare(
        lambda x: getattr(F, name)(x, kiln.tensor(target), **kw),
        lambda x: getattr(TF, name)(x, torch.tensor(target), **kw),
        [x],
    )


# ---- non-contiguous and empty inputs, errors from the ops ----------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_inputs(dtype):
    def t(x):
        return x.transpose(1, 2)

    k, tm = nn.LayerNorm(4), randomize(tnn.LayerNorm(4))
    copy_module(k, tm, dtype)
    compare(lambda x: k(t(x)), lambda x: tm(t(x)), [arr(2, 4, 5)], dtype, True, k, tm)
    kb, tb = _bn_pair("BatchNorm2d", {}, dtype)
    compare(
        lambda x: kb(x[:, :, ::2]),
        lambda x: tb(x[:, :, ::2]),
        [arr(2, 3, 6, 4)],
        dtype,
        True,
        kb,
        tb,
    )
    assert_close(kb.running_var, tb.running_var, **TOL[dtype])
    kg, tg = nn.GroupNorm(3, 6), randomize(tnn.GroupNorm(3, 6))
    copy_module(kg, tg, dtype)
    compare(lambda x: kg(t(x)), lambda x: tg(t(x)), [arr(2, 5, 6)], dtype, True, kg, tg)


def test_empty_batch():
    assert tuple(nn.LayerNorm(3)(kiln.randn(0, 3)).shape) == (0, 3)
    assert tuple(nn.Embedding(4, 2)(kiln.tensor(np.zeros((0, 5), dtype=np.int64))).shape) == (
        0,
        5,
        2,
    )


def test_op_errors():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(kiln.randn(1, 3))
    m = nn.BatchNorm1d(3).eval()
    assert tuple(m(kiln.randn(1, 3)).shape) == (1, 3)
    with pytest.raises(IndexError, match=r"\[embedding\].*out of range"):
        nn.Embedding(4, 2)(kiln.tensor([5]))
    with pytest.raises(TypeError, match=r"\[embedding\]"):
        nn.Embedding(4, 2)(kiln.tensor([1.0]))


# ---- reprs, exports and shape errors -------------------------------------------------------

REPRS = [
    ("LayerNorm", (4,), {}),
    ("LayerNorm", ([3, 4],), {"eps": 1e-3, "elementwise_affine": False}),
    ("RMSNorm", (4,), {}),
    ("RMSNorm", ((2, 4),), {"eps": 1e-6}),
    ("GroupNorm", (2, 6), {"affine": False}),
    ("GroupNorm", (2, 6), {"bias": False}),
    ("LayerNorm", (4,), {"bias": False}),
    ("BatchNorm1d", (3,), {}),
    ("BatchNorm1d", (3,), {"bias": False}),
    ("BatchNorm2d", (3,), {"momentum": None, "affine": False, "track_running_stats": False}),
    ("Dropout", (), {}),
    ("Dropout2d", (0.2,), {"inplace": True}),
    ("Embedding", (10, 3), {}),
    ("Embedding", (10, 3), {"padding_idx": -2, "max_norm": 2.0, "norm_type": 1.0}),
    ("CrossEntropyLoss", (), {"label_smoothing": 0.1}),
    ("NLLLoss", (), {}),
]


@pytest.mark.parametrize("cls,args,kw", REPRS)
def test_repr_and_state_dict_keys(cls, args, kw):
    k, t = getattr(nn, cls)(*args, **kw), getattr(tnn, cls)(*args, **kw)
    assert repr(k) == repr(t)
    assert list(k.state_dict()) == list(t.state_dict())


def test_functional_exports():
    for name in [
        "layer_norm",
        "rms_norm",
        "group_norm",
        "batch_norm",
        "embedding",
        "dropout",
        "dropout2d",
        "cross_entropy",
        "nll_loss",
    ]:
        assert callable(getattr(F, name))


def test_shape_errors_name_module():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(5))
    with pytest.raises(nn.ModuleShapeError, match=r"^1 \(BatchNorm2d\): .*num_features=5.*got 4"):
        net(kiln.randn(2, 3, 4, 4))
    with pytest.raises(nn.ModuleShapeError, match=r"^BatchNorm2d: expected 4-D input, got 3-D"):
        nn.BatchNorm2d(3)(kiln.randn(3, 4, 4))
    with pytest.raises(nn.ModuleShapeError, match=r"^BatchNorm1d: expected 2-D or 3-D"):
        nn.BatchNorm1d(3)(kiln.randn(2, 3, 4, 4))
    seq = nn.Sequential(nn.Linear(4, 5), nn.LayerNorm(4))
    with pytest.raises(
        nn.ModuleShapeError, match=r"^1 \(LayerNorm\): .*\[4\].*trailing shape \[5\]"
    ):
        seq(kiln.randn(2, 4))
    with pytest.raises(nn.ModuleShapeError, match=r"^RMSNorm: .*\[2, 3\]"):
        nn.RMSNorm([2, 3])(kiln.randn(3, 2))
    with pytest.raises(nn.ModuleShapeError, match=r"^GroupNorm: .*C=6.*got 4 channels"):
        nn.GroupNorm(2, 6)(kiln.randn(2, 4, 3))
    with pytest.raises(nn.ModuleShapeError, match=r"^Dropout2d: expected 3-D"):
        nn.Dropout2d()(kiln.randn(2, 3))
    with pytest.raises(nn.ModuleShapeError, match=r"^CrossEntropyLoss: .*\[6\].*\[5\]"):
        nn.CrossEntropyLoss()(kiln.randn(6, 3), kiln.tensor([0, 1, 2, 0, 1]))
    with pytest.raises(nn.ModuleShapeError, match=r"^NLLLoss: .*3 classes.*got 4 classes"):
        nn.NLLLoss(weight=kiln.ones(3))(kiln.randn(2, 4), kiln.tensor([0, 1]))
    with pytest.raises(ValueError, match="divisible by num_groups"):
        nn.GroupNorm(4, 6)
    with pytest.raises(ValueError, match="padding_idx"):
        nn.Embedding(3, 2, padding_idx=3)


def _model(lib):
    return lib.Sequential(
        lib.Conv2d(3, 4, 3),
        lib.BatchNorm2d(4),
        lib.ReLU(),
        lib.GroupNorm(2, 4),
        lib.Flatten(),
        lib.Linear(16, 8),
        lib.LayerNorm(8),
        lib.Dropout(0.0),
        lib.BatchNorm1d(8, momentum=None),
        lib.Linear(8, 5),
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_model_state_dict_round_trip_train_and_eval(dtype):
    """A torch model's state_dict loads into the same kiln model; both agree in train mode
    (including the running stats it updates) and then in eval mode."""
    kmod, tmod = copy_module(_model(nn), randomize(_model(tnn)), dtype)
    assert list(kmod.state_dict()) == list(tmod.state_dict())
    target = np.array([0, 4, 2])
    loss_k, loss_t = nn.CrossEntropyLoss(), tnn.CrossEntropyLoss()
    for step in range(3):
        compare(
            lambda x: loss_k(kmod(x), kiln.tensor(target)),
            lambda x: loss_t(tmod(x), torch.tensor(target)),
            [arr(3, 3, 4, 4, seed=step)],
            dtype,
            True,
            kmod,
            tmod,
        )
        kmod.zero_grad()
        tmod.zero_grad()
    for name, tb in tmod.state_dict().items():
        assert_close(kmod.state_dict()[name], tb, **TOL[dtype])
    kmod.eval()
    tmod.eval()
    compare(kmod, tmod, [arr(2, 3, 4, 4, seed=7)], dtype, True, kmod, tmod)
