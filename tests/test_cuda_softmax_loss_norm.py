"""CUDA softmax family, fused losses and normalization kernels: each result (and gradient)
on the GPU against kiln's CPU result and PyTorch's (CPU). Helpers and the dry-run switch
(KILN_TEST_CUDA_REDUCE_DEVICE=cpu) are those of test_cuda_reduce.py.

Every test is marked `cuda` and skips without a GPU. Run on a GPU machine with:
    cd tests && python -m pytest -q test_cuda_reduce.py test_cuda_softmax_loss_norm.py
"""

import kiln
import numpy as np
import pytest
from compare import assert_close
from test_cuda_reduce import (
    DEVICE,
    FLOATS,
    KF,
    LAYOUTS,
    F,
    check_grads,
    exact_torch,
    on_device,
    same,
    sample,
    tol,
    torch,
    views,
)

if DEVICE == "cuda":
    pytestmark = pytest.mark.cuda


# ---- softmax family -------------------------------------------------------------------------

SOFT = {"softmax": (KF.softmax, F.softmax), "log_softmax": (KF.log_softmax, F.log_softmax)}


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_forward(name, dtype, dim):
    arr = sample((4, 33, 6), kiln.float64, seed=16) * 3
    arr[1, :, 2] = -np.inf
    arr[2, 0, :] = 80  # large logits must not overflow
    for kind in LAYOUTS:
        c, d, t = views(arr, kind, dtype)
        if name == "logsumexp":
            got, want = d.logsumexp(dim), c.logsumexp(dim)
            ref = t.logsumexp(dim)
        else:
            got, want = SOFT[name][0](d, dim), SOFT[name][0](c, dim)
            ref = SOFT[name][1](t, dim)
        same(got, want, dtype)
        if exact_torch(dtype):
            assert_close(on_device(got), ref, *tol(dtype))


@pytest.mark.parametrize(
    "shape,dim",
    [
        ((2, 100_000), 1),
        ((100_000, 10), 1),
        ((100_000, 3), 0),
        ((3, 2000, 70), 1),
        ((0, 5), 1),
        ((5, 0), 1),
        ((7,), 0),
        ((1, 1), 1),
    ],
    ids=str,
)
def test_softmax_sizes(shape, dim):
    arr = sample(shape, kiln.float32, seed=17)
    c, d, t = views(arr, "contiguous", kiln.float32)
    for kf, tf in SOFT.values():
        got = kf(d, dim)
        same(got, kf(c, dim), rtol=1e-4, atol=1e-6)
        assert_close(on_device(got), tf(t, dim), 1e-4, 1e-6)
    got = d.logsumexp(dim)
    same(got, c.logsumexp(dim), rtol=1e-5, atol=1e-5)
    assert_close(on_device(got), t.logsumexp(dim), 1e-5, 1e-5)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dim", [0, -1])
@pytest.mark.parametrize(
    "dtype", [kiln.float32, kiln.float64, kiln.float16, kiln.bfloat16], ids=str
)
def test_softmax_gradients(name, dim, dtype):
    arr = sample((5, 300), kiln.float64, seed=18)
    kf, tf = SOFT[name]
    check_grads(lambda x: kf(x, dim), lambda x: tf(x, dim), [arr], dtype)
    check_grads(lambda x: x.logsumexp(dim), lambda x: x.logsumexp(dim), [arr], dtype)
    arr = sample((4, 5000), kiln.float64, seed=19)  # block-per-row fused backward
    check_grads(lambda x: kf(x, -1), lambda x: tf(x, -1), [arr], dtype)


# ---- losses ---------------------------------------------------------------------------------


def targets(shape, classes, seed, ignore=None):
    t = np.random.default_rng(seed).integers(0, classes, shape)
    if ignore is not None and t.size:
        t.flat[::3] = ignore
    return t


@pytest.mark.parametrize("shape", [(8, 5), (6, 4, 3, 2), (5,), (3, 5000), (4000, 7)], ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize(
    "dtype", [kiln.float32, kiln.float64, kiln.float16, kiln.bfloat16], ids=str
)
def test_cross_entropy_class_indices(shape, reduction, weighted, smoothing, dtype):
    classes = shape[0] if len(shape) == 1 else shape[1]
    tshape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    tgt = targets(tshape, classes, 20, ignore=None if len(shape) == 1 else -100)
    arr = sample(shape, kiln.float64, seed=21) * 2
    warr = np.random.default_rng(22).random(classes) + 0.5
    args = [arr, warr] if weighted else [arr]

    def kfn(x, w=None):
        t = kiln.tensor(tgt).to(x.device)
        return KF.cross_entropy(
            x,
            t,
            w.detach() if w is not None else None,
            reduction=reduction,
            label_smoothing=smoothing,
        )

    def tfn(x, w=None):
        return F.cross_entropy(
            x,
            torch.tensor(tgt),
            w.detach() if w is not None else None,
            reduction=reduction,
            label_smoothing=smoothing,
        )

    check_grads(kfn, tfn, args, dtype)


@pytest.mark.parametrize("shape", [(8, 5), (3, 4, 6), (2, 3000)], ids=str)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_cross_entropy_probability_targets(shape, weighted, smoothing):
    arr = sample(shape, kiln.float64, seed=23)
    prob = np.random.default_rng(24).random(shape)
    prob = prob / prob.sum(axis=1, keepdims=True)
    warr = np.random.default_rng(25).random(shape[1]) + 0.5

    def kfn(x, y):
        w = kiln.tensor(warr).to(x.dtype).to(x.device) if weighted else None
        return KF.cross_entropy(x, y, w, label_smoothing=smoothing, reduction="none")

    def tfn(x, y):
        w = torch.tensor(warr).to(x.dtype) if weighted else None
        return F.cross_entropy(x, y, w, label_smoothing=smoothing, reduction="none")

    for dtype in [kiln.float32, kiln.float64]:
        check_grads(kfn, tfn, [arr, prob], dtype)


@pytest.mark.parametrize("shape", [(8, 5), (6, 4, 3), (2000, 9)], ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_nll_loss(shape, reduction, weighted):
    tgt = targets((shape[0],) + shape[2:], shape[1], 26, ignore=-100)
    arr = np.log(np.random.default_rng(27).random(shape) + 0.1)
    warr = np.random.default_rng(28).random(shape[1]) + 0.5

    def kfn(x):
        w = kiln.tensor(warr).to(x.dtype).to(x.device) if weighted else None
        return KF.nll_loss(x, kiln.tensor(tgt).to(x.device), w, reduction=reduction)

    def tfn(x):
        w = torch.tensor(warr).to(x.dtype) if weighted else None
        return F.nll_loss(x, torch.tensor(tgt), w, reduction=reduction)

    for dtype in [kiln.float32, kiln.float64]:
        check_grads(kfn, tfn, [arr], dtype)


def test_losses_all_ignored_empty_and_bad_targets():
    x = kiln.randn(4, 5).to(DEVICE)
    t = kiln.full((4,), -100, dtype=kiln.int64).to(DEVICE)
    assert np.isnan(on_device(KF.cross_entropy(x, t)).item())  # 0 / 0, as in PyTorch
    e = kiln.zeros(0, 5, device=DEVICE)
    te = kiln.zeros(0, dtype=kiln.int64).to(DEVICE)
    assert_close(on_device(KF.cross_entropy(e, te, reduction="sum")), torch.tensor(0.0))
    assert tuple(KF.cross_entropy(e, te, reduction="none").shape) == (0,)
    with pytest.raises(IndexError, match=r"\[cross_entropy\] target 5 is out of bounds"):
        KF.cross_entropy(x, kiln.tensor([0, 5, 1, 2]).to(DEVICE))
    with pytest.raises(IndexError, match=r"\[nll_loss\] target -3 is out of bounds"):
        KF.nll_loss(x, kiln.tensor([0, -3, 1, 2]).to(DEVICE))
    if DEVICE == "cuda":
        with pytest.raises(ValueError, match="weight on"):
            KF.cross_entropy(x, kiln.tensor([0, 1, 1, 2]).to(DEVICE), kiln.ones(5))


def test_cross_entropy_double_backward_on_device():
    arr = sample((4, 6), kiln.float64, seed=29)
    tgt = kiln.tensor([1, 0, 5, 2])
    out = []
    for device in [DEVICE, "cpu"]:
        x = kiln.tensor(arr).to(device).requires_grad_()
        loss = KF.cross_entropy(x, tgt.to(device), label_smoothing=0.1)
        (g,) = kiln.autograd.grad(loss, x, create_graph=True)
        (gg,) = kiln.autograd.grad((g * g).sum(), x)
        out.append((loss, g, gg))
    for d, c in zip(out[0], out[1]):
        same(d, c)


# ---- normalization --------------------------------------------------------------------------


def _norm_args(shape, pshape, affine, seed):
    rng = np.random.default_rng(seed)
    args = [rng.standard_normal(shape) * 2 + 0.5]
    if affine:
        args += [rng.random(pshape) + 0.5, rng.standard_normal(pshape)]
    return args


@pytest.mark.parametrize(
    "shape,normalized",
    [((4, 7), (7,)), ((3, 5, 8), (5, 8)), ((300, 64), (64,)), ((2, 5000), (5000,)), ((1, 1), (1,))],
    ids=str,
)
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_layer_norm_and_rms_norm(shape, normalized, affine, dtype):
    args = _norm_args(shape, normalized, affine, 30)
    check_grads(
        lambda x, *wb: KF.layer_norm(x, normalized, *wb),
        lambda x, *wb: F.layer_norm(x, normalized, *wb),
        args,
        dtype,
    )
    check_grads(
        lambda x, *wb: KF.rms_norm(x, normalized, *wb[:1]),
        lambda x, *wb: F.rms_norm(x, normalized, *wb[:1]),
        args[:2],
        dtype,
    )


@pytest.mark.parametrize(
    "shape,groups",
    [((4, 6, 5), 3), ((2, 8, 3, 3), 4), ((3, 4), 2), ((2, 6, 2000), 2), ((1, 4, 2), 4)],
    ids=str,
)
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_group_norm(shape, groups, affine, dtype):
    args = _norm_args(shape, (shape[1],), affine, 31)
    check_grads(
        lambda x, *wb: KF.group_norm(x, groups, *wb),
        lambda x, *wb: F.group_norm(x, groups, *wb),
        args,
        dtype,
    )


@pytest.mark.parametrize(
    "shape", [(8, 5), (4, 3, 6), (2, 3, 4, 5), (64, 3, 40), (3000, 2)], ids=str
)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("dtype", [kiln.float32, kiln.float64, kiln.float16], ids=str)
def test_batch_norm(shape, training, affine, dtype):
    c = shape[1]
    rng = np.random.default_rng(32)
    rm0, rv0 = rng.standard_normal(c), rng.random(c) + 0.5
    args = _norm_args(shape, (c,), affine, 33)
    stats = {}

    def kfn(x, *wb):  # running stats in the input's dtype
        rm = kiln.tensor(rm0).to(x.dtype).to(x.device)
        rv = kiln.tensor(rv0).to(x.dtype).to(x.device)
        stats[x.device.type] = (rm, rv)
        return KF.batch_norm(x, rm, rv, *wb, training=training, momentum=0.3)

    def tfn(x, *wb):
        rm, rv = torch.tensor(rm0).to(x.dtype), torch.tensor(rv0).to(x.dtype)
        stats["torch"] = (rm, rv)
        return F.batch_norm(x, rm, rv, *wb, training=training, momentum=0.3)

    check_grads(kfn, tfn, args, dtype)
    for d, cpu in zip(stats[DEVICE], stats["cpu"]):
        same(d, cpu, dtype)
    if exact_torch(dtype):
        for d, ref in zip(stats[DEVICE], stats["torch"]):
            assert_close(on_device(d), ref, *tol(dtype))


def test_norm_parameter_gradients_without_elements():
    """A zero spatial size (K = 0: zero weight/bias gradients) and a batch norm of no
    channels (empty gradients): the device kernel once left the first unset and wrote
    past the second."""

    def stats(x):
        c = x.shape[1]
        return kiln.zeros(c).to(x.device), kiln.ones(c).to(x.device)

    cases = [
        ((2, 4, 0), lambda x, w, b: KF.group_norm(x, 2, w, b)),
        ((3, 4, 0), lambda x, w, b: KF.batch_norm(x, *stats(x), w, b, training=False)),
        ((4, 0, 5), lambda x, w, b: KF.batch_norm(x, None, None, w, b, training=True)),
        ((4, 0), lambda x, w, b: KF.batch_norm(x, None, None, w, b, training=True)),
    ]
    for shape, fn in cases:
        junk = kiln.full((4096,), float("nan")).to(DEVICE)  # leave NaNs in the pool
        del junk
        grads = []
        for device in [DEVICE, "cpu"]:
            x = kiln.randn(*shape).to(device).requires_grad_()
            w = (kiln.rand(shape[1]) + 0.5).to(device).requires_grad_()
            b = kiln.randn(shape[1]).to(device).requires_grad_()
            fn(x, w, b).sum().backward()
            grads.append((x.grad, w.grad, b.grad))
        same(grads[0], grads[1])


def test_batch_norm_running_stats_must_be_on_the_device():
    if DEVICE != "cuda":
        pytest.skip("needs two devices")
    x = kiln.randn(4, 3).to(DEVICE)
    with pytest.raises(ValueError, match=r"\[batch_norm\] expected running stats on"):
        KF.batch_norm(x, kiln.zeros(3), kiln.ones(3))


def test_norm_double_backward_on_device():
    arr = _norm_args((3, 8), (8,), True, 34)
    out = []
    for device in [DEVICE, "cpu"]:
        x, w, b = [kiln.tensor(a).to(device).requires_grad_() for a in arr]
        y = KF.layer_norm(x, (8,), w, b)
        (g,) = kiln.autograd.grad((y * y).sum(), x, create_graph=True)
        gx, gw = kiln.autograd.grad(g.sum(), [x, w])
        out.append((y, g, gx, gw))
    for d, c in zip(out[0], out[1]):
        same(d, c)
