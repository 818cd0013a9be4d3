"""kiln.amp.GradScaler against torch.amp.GradScaler on CPU: the scale trajectory
with injected inf/nan gradients (skipped steps, backoff, growth), unscaled
gradients, the per-optimizer state machine and its errors, state_dict, the two
fused ops themselves, and small training loops under autocast + GradScaler."""

import kiln
import numpy as np
import pytest
from compare import dtype_name, require_torch
from nn_compare import copy_module

torch = require_torch()


def to_np(t):
    return t.detach().to(kiln.float64 if isinstance(t, kiln.Tensor) else torch.float64).cpu().numpy()


# ---- the fused ops --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16", "float16"])
def test_non_finite_check_and_unscale_matches_torch(dtype):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(np.float32) * 1000 for s in [(7,), (40000,), (3, 5)]]
    for poison in (None, np.inf, -np.inf, np.nan):
        results = {}
        for lib in (kiln, torch):
            ts = [lib.tensor(a.copy()).to(getattr(lib, dtype)) for a in arrays]
            if poison is not None:
                ts[1][12345] = poison
            ts.append(lib.tensor(arrays[2].copy()).to(getattr(lib, dtype)).t())  # non-contiguous
            found = lib.zeros(())
            inv = lib.full((), 1 / 1024.0)
            lib._amp_foreach_non_finite_check_and_unscale_(ts, found, inv)
            results[lib.__name__] = (found.item(), [to_np(t) for t in ts])
        assert results["kiln"][0] == results["torch"][0] == (0.0 if poison is None else 1.0)
        for k, t in zip(results["kiln"][1], results["torch"][1]):
            np.testing.assert_array_equal(k, t)


def test_non_finite_check_keeps_found_inf_set():
    found = kiln.ones(())
    kiln._amp_foreach_non_finite_check_and_unscale_([kiln.ones(3)], found, kiln.full((), 0.5))
    assert found.item() == 1.0


def test_update_scale_matches_torch():
    infs = [0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0]
    traj = {}
    for lib in (kiln, torch):
        scale, tracker = lib.full((), 4.0), lib.zeros((), dtype=lib.int32)
        rows = []
        for f in infs:
            lib._amp_update_scale_(scale, tracker, lib.full((), float(f)), 2.0, 0.25, 3)
            rows.append((scale.item(), tracker.item()))
        traj[lib.__name__] = rows
    assert traj["kiln"] == traj["torch"]


def test_update_scale_does_not_grow_past_float32():
    scale, tracker = kiln.full((), 3e38), kiln.zeros((), dtype=kiln.int32)
    kiln._amp_update_scale_(scale, tracker, kiln.zeros(()), 2.0, 0.5, 1)
    assert scale.item() == pytest.approx(3e38) and tracker.item() == 0


def test_fused_ops_reject_bad_arguments():
    op = kiln._amp_foreach_non_finite_check_and_unscale_
    with pytest.raises(
        ValueError, match=r"\[_amp_foreach_non_finite_check_and_unscale_\] found_inf"
    ):
        op([kiln.ones(2)], kiln.zeros(2), kiln.ones(()))
    with pytest.raises(ValueError, match=r"inv_scale must be a one-element float32"):
        op([kiln.ones(2)], kiln.zeros(()), kiln.ones((), dtype=kiln.float64))
    with pytest.raises(TypeError, match=r"tensor 0 must be a floating point tensor"):
        op([kiln.ones(2, dtype=kiln.int64)], kiln.zeros(()), kiln.ones(()))
    with pytest.raises(ValueError, match=r"\[_amp_update_scale_\] growth_tracker must be"):
        kiln._amp_update_scale_(kiln.ones(()), kiln.zeros(()), kiln.zeros(()), 2.0, 0.5, 1)
    with pytest.raises(ValueError, match=r"growth_interval must be positive"):
        kiln._amp_update_scale_(
            kiln.ones(()), kiln.zeros((), dtype=kiln.int32), kiln.zeros(()), 2.0, 0.5, 0
        )


# ---- the scaler -----------------------------------------------------------------------------


def scaler_run(lib, poison, steps=14, **kw):
    """SGD on a tiny problem with inf/nan written into chosen steps' grads; returns the
    (loss, scale, growth tracker, params) trajectory."""
    w = lib.tensor(np.array([0.5, -1.0, 2.0], dtype=np.float32)).requires_grad_(True)
    b = lib.tensor(np.array([0.1], dtype=np.float32)).requires_grad_(True)
    opt = lib.optim.SGD([w, b], lr=0.01, momentum=0.9)
    scaler = lib.amp.GradScaler("cpu", **kw)
    x = lib.tensor(np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3))
    rows = []
    for step in range(steps):
        opt.zero_grad()
        loss = ((x * w).sum(1) + b).pow(2).mean()
        scaler.scale(loss).backward()
        if step in poison:
            w.grad[1] = poison[step]
        scaler.step(opt)
        scaler.update()
        rows.append(
            (
                loss.item(),
                scaler.get_scale(),
                scaler._get_growth_tracker(),
                *to_np(w).tolist(),
                *to_np(b).tolist(),
            )
        )
    return rows


def test_scale_trajectory_matches_torch():
    poison = {1: float("inf"), 5: float("nan"), 6: float("-inf")}
    kw = {"init_scale": 2.0**10, "growth_factor": 4.0, "backoff_factor": 0.25, "growth_interval": 3}
    k, t = scaler_run(kiln, poison, **kw), scaler_run(torch, poison, **kw)
    for rk, rt in zip(k, t):
        assert rk[1:3] == rt[1:3]  # scale and growth tracker exactly
        np.testing.assert_allclose(rk, rt, rtol=1e-6, atol=1e-7)
    scales = [r[1] for r in k]
    assert scales[:6] == [2.0**10, 2.0**8, 2.0**8, 2.0**8, 2.0**10, 2.0**8]  # backoff, growth


def test_skipped_step_leaves_params_and_returns_none():
    w = kiln.ones(2, requires_grad=True)
    opt = kiln.optim.SGD([w], lr=1.0)
    scaler = kiln.amp.GradScaler("cpu")
    scaler.scale(w.sum()).backward()
    w.grad[0] = float("nan")
    assert scaler.step(opt) is None
    np.testing.assert_array_equal(w.detach().numpy(), [1.0, 1.0])
    scaler.update()
    assert scaler.get_scale() == 2.0**15


def test_unscale_then_clip():
    results = {}
    for lib in (kiln, torch):
        w = lib.tensor(np.array([3.0, 4.0], dtype=np.float32)).requires_grad_(True)
        opt = lib.optim.SGD([w], lr=0.1)
        scaler = lib.amp.GradScaler("cpu", init_scale=256.0)
        scaler.scale((w * w).sum()).backward()
        scaler.unscale_(opt)
        results[lib.__name__ + "grad"] = to_np(w.grad)
        lib.nn.utils.clip_grad_norm_([w], 1.0)
        scaler.step(opt)
        scaler.update()
        results[lib.__name__] = to_np(w)
    np.testing.assert_array_equal(results["kilngrad"], [6.0, 8.0])
    np.testing.assert_allclose(results["kiln"], results["torch"], rtol=1e-6)


def test_state_machine_errors():
    w = kiln.ones(2, requires_grad=True)
    opt = kiln.optim.SGD([w], lr=0.1)
    scaler = kiln.amp.GradScaler("cpu")
    with pytest.raises(AssertionError, match="Attempted step but _scale is None"):
        scaler.step(opt)
    with pytest.raises(AssertionError, match="Attempted unscale_ but _scale is None"):
        scaler.unscale_(opt)
    scaler.scale(w.sum()).backward()
    with pytest.raises(AssertionError, match="No inf checks were recorded prior to update"):
        scaler.update()
    scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match=r"unscale_\(\) has already been called"):
        scaler.unscale_(opt)
    scaler.step(opt)
    with pytest.raises(RuntimeError, match=r"step\(\) has already been called"):
        scaler.step(opt)
    with pytest.raises(RuntimeError, match=r"unscale_\(\) is being called after step\(\)"):
        scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match="Closure use is not currently supported"):
        scaler.step(opt, closure=lambda: 0.0)
    scaler.update()
    scaler.unscale_(opt)  # a new iteration
    h = kiln.ones(2, dtype=kiln.float16, requires_grad=True)
    h.sum().backward()
    opt2 = kiln.optim.SGD([h], lr=0.1)
    with pytest.raises(ValueError, match="Attempting to unscale FP16 gradients"):
        scaler.unscale_(opt2)
    with pytest.raises(AssertionError, match="growth factor"):
        kiln.amp.GradScaler("cpu", growth_factor=1.0)
    with pytest.raises(AssertionError, match="backoff factor"):
        kiln.amp.GradScaler("cpu", backoff_factor=1.0)


def test_two_optimizers_share_one_update():
    a, b = kiln.ones(2, requires_grad=True), kiln.ones(2, requires_grad=True)
    oa, ob = kiln.optim.SGD([a], lr=0.1), kiln.optim.SGD([b], lr=0.1)
    scaler = kiln.amp.GradScaler("cpu", init_scale=8.0, growth_interval=1)
    scaler.scale((a * b).sum()).backward()
    b.grad[0] = float("inf")
    scaler.step(oa)
    scaler.step(ob)
    scaler.update()
    assert scaler.get_scale() == 4.0  # either optimizer's inf backs the scale off
    np.testing.assert_allclose(a.detach().numpy(), [0.9, 0.9])
    np.testing.assert_array_equal(b.detach().numpy(), [1.0, 1.0])


def test_scale_nested_outputs():
    scaler = kiln.amp.GradScaler("cpu", init_scale=4.0)
    x, y = kiln.ones(2), kiln.full((3,), 2.0)
    out = scaler.scale([x, (y, [x])])
    assert isinstance(out, list) and isinstance(out[1], tuple) and isinstance(out[1][1], list)
    np.testing.assert_array_equal(out[0].numpy(), [4.0, 4.0])
    np.testing.assert_array_equal(out[1][0].numpy(), [8.0] * 3)
    gen = scaler.scale(t for t in [x])
    assert next(iter(gen)).numpy().tolist() == [4.0, 4.0]
    with pytest.raises(ValueError, match="outputs must be a Tensor or an iterable of Tensors"):
        scaler.scale([x, 3])


def test_update_with_new_scale():
    scaler = kiln.amp.GradScaler("cpu", init_scale=4.0)
    scaler.scale(kiln.ones(()))
    scaler.update(new_scale=32.0)
    assert scaler.get_scale() == 32.0
    scaler.update(new_scale=kiln.full((), 2.0))
    assert scaler.get_scale() == 2.0
    with pytest.raises(AssertionError, match="new_scale should be a float"):
        scaler.update(new_scale=kiln.ones(2))


def test_state_dict_round_trip_matches_torch():
    sd = {}
    for lib in (kiln, torch):
        s = lib.amp.GradScaler(
            "cpu", init_scale=64.0, growth_factor=3.0, backoff_factor=0.125, growth_interval=7
        )
        assert s.state_dict()["scale"] == 64.0  # before the first scale()
        w = lib.ones(2, requires_grad=True)
        opt = lib.optim.SGD([w], lr=0.1)
        for _ in range(2):
            s.scale(w.sum()).backward()
            s.step(opt)
            s.update()
        sd[lib.__name__] = s.state_dict()
    assert sd["kiln"] == sd["torch"]
    fresh = kiln.amp.GradScaler("cpu")
    fresh.load_state_dict(sd["kiln"])
    assert fresh.state_dict() == sd["kiln"]
    assert fresh.get_growth_factor() == 3.0 and fresh.get_backoff_factor() == 0.125
    assert fresh.get_growth_interval() == 7 and fresh._get_growth_tracker() == 2
    fresh.scale(kiln.ones(()))  # lazily created tensors take the loaded values
    assert fresh.get_scale() == 64.0 and fresh._growth_tracker.item() == 2
    fresh.load_state_dict({**sd["kiln"], "scale": 16.0, "_growth_tracker": 5})
    assert fresh.get_scale() == 16.0 and fresh._growth_tracker.item() == 5
    with pytest.raises(RuntimeError, match="source state dict is empty"):
        fresh.load_state_dict({})


def test_disabled_scaler_is_a_pass_through():
    w = kiln.ones(2, requires_grad=True)
    opt = kiln.optim.SGD([w], lr=0.5)
    scaler = kiln.amp.GradScaler("cpu", enabled=False)
    loss = w.sum()
    assert scaler.scale(loss) is loss
    loss.backward()
    scaler.unscale_(opt)
    scaler.step(opt)
    scaler.update()
    np.testing.assert_allclose(w.detach().numpy(), [0.5, 0.5])
    assert not scaler.is_enabled() and scaler.get_scale() == 1.0 and scaler.state_dict() == {}
    scaler.load_state_dict({})


def test_cuda_scaler_without_cuda_warns_and_disables():
    with pytest.warns(UserWarning, match="CUDA is not available.  Disabling"):
        scaler = kiln.amp.GradScaler()
    assert not scaler.is_enabled()


# ---- training under autocast + GradScaler ---------------------------------------------------


def mlp(nn):
    return nn.Sequential(
        nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.GELU(), nn.Linear(16, 4)
    )


def cnn(nn):
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 4),
    )


class _Transformer:
    @staticmethod
    def build(nn):
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = nn.Linear(6, 16)
                self.enc = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
                self.head = nn.Linear(16, 4)

            def forward(self, x):
                return self.head(self.enc(self.emb(x)).mean(1))

        return Model()


MODELS = {
    "mlp": (mlp, (16, 8)),
    "cnn": (cnn, (8, 2, 6, 6)),
    "transformer": (_Transformer.build, (8, 5, 6)),
}


def train(lib, model, shape, low, steps=8):
    rng = np.random.default_rng(3)
    x = lib.tensor(rng.standard_normal(shape).astype(np.float32))
    y = lib.tensor(rng.integers(0, 4, shape[0]).astype(np.int64))
    opt = lib.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scaler = lib.amp.GradScaler("cpu", init_scale=2.0**12, growth_interval=3)
    losses, scales = [], []
    for _ in range(steps):
        opt.zero_grad()
        with lib.autocast("cpu", dtype=getattr(lib, low)):
            out = model(x)
            loss = lib.nn.functional.cross_entropy(out, y)
        assert dtype_name(out.dtype) == low and loss.dtype == lib.float32
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        losses.append(loss.item())
        scales.append(scaler.get_scale())
    grads_fp32 = all(p.grad.dtype == lib.float32 for p in model.parameters())
    return np.array(losses), scales, grads_fp32


@pytest.mark.parametrize("low", ["bfloat16", "float16"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_training_follows_torch(name, low):
    build, shape = MODELS[name]
    torch.manual_seed(0)
    tmod = build(torch.nn)
    kmod = build(kiln.nn)
    copy_module(kmod, tmod, "float32")
    kl, ks, kg = train(kiln, kmod, shape, low)
    tl, ts, tg = train(torch, tmod, shape, low)
    assert kg and tg
    assert ks == ts
    tol = 4e-2 if low == "bfloat16" else 1e-2
    np.testing.assert_allclose(kl, tl, rtol=tol, atol=tol)
    assert kl[-1] < kl[0]  # it learns


# ---- CUDA (skipped without a GPU) ------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16", "float16"])
def test_cuda_non_finite_check_and_unscale_matches_cpu(dtype):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(np.float32) * 100 for s in [(5,), (300000,), (4, 3)]]
    for poison in (None, np.inf, np.nan):
        out = {}
        for dev in ("cpu", "cuda"):
            ts = [kiln.tensor(a.copy()).to(getattr(kiln, dtype)).to(dev) for a in arrays]
            if poison is not None:
                ts[1][299999] = poison
            ts.append(kiln.tensor(arrays[2].copy()).to(getattr(kiln, dtype)).to(dev).t())
            found = kiln.zeros((), device=dev)
            kiln._amp_foreach_non_finite_check_and_unscale_(
                ts, found, kiln.full((), 0.125, device=dev)
            )
            out[dev] = (found.item(), [to_np(t.cpu()) for t in ts])
        assert out["cpu"][0] == out["cuda"][0] == (0.0 if poison is None else 1.0)
        for c, g in zip(out["cpu"][1], out["cuda"][1]):
            np.testing.assert_array_equal(c, g)


@pytest.mark.cuda
def test_cuda_update_scale_matches_cpu():
    rows = {}
    for dev in ("cpu", "cuda"):
        scale = kiln.full((), 4.0, device=dev)
        tracker = kiln.zeros((), dtype=kiln.int32, device=dev)
        rows[dev] = []
        for f in [0, 0, 1, 0, 0, 0, 1]:
            kiln._amp_update_scale_(
                scale, tracker, kiln.full((), float(f), device=dev), 2.0, 0.5, 2
            )
            rows[dev].append((scale.item(), tracker.item()))
    assert rows["cpu"] == rows["cuda"]


@pytest.mark.cuda
def test_cuda_training_follows_torch():
    torch.manual_seed(0)
    tmod = mlp(torch.nn)
    kmod = mlp(kiln.nn)
    copy_module(kmod, tmod, "float32")
    kmod.to("cuda")
    tmod.to("cuda")
    results = {}
    for lib, model in ((kiln, kmod), (torch, tmod)):
        rng = np.random.default_rng(3)
        x = lib.tensor(rng.standard_normal((16, 8)).astype(np.float32)).to("cuda")
        y = lib.tensor(rng.integers(0, 4, 16).astype(np.int64)).to("cuda")
        opt = lib.optim.SGD(model.parameters(), lr=0.05)
        scaler = lib.amp.GradScaler("cuda", init_scale=2.0**12, growth_interval=2)
        losses = []
        for _ in range(6):
            opt.zero_grad()
            with lib.autocast("cuda"):
                loss = lib.nn.functional.cross_entropy(model(x), y)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            losses.append((loss.item(), scaler.get_scale()))
        results[lib.__name__] = losses
    for (kl, ks), (tl, ts) in zip(results["kiln"], results["torch"]):
        assert ks == ts
        assert kl == pytest.approx(tl, rel=1e-2, abs=1e-2)
