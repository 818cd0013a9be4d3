"""kiln.optim against torch.optim: same parameters and gradients, 20 steps, every option."""

import itertools

import kiln
import numpy as np
import pytest
from compare import require_torch

torch = require_torch()

SHAPES = [(4, 3), (5,), ()]


def _grid(**options):
    keys = list(options)
    return [dict(zip(keys, values)) for values in itertools.product(*options.values())]


def _sgd_cases():
    cases = []
    for kw in _grid(
        momentum=[0, 0.9],
        dampening=[0, 0.3],
        nesterov=[False, True],
        weight_decay=[0, 0.1],
        maximize=[False, True],
    ):
        if kw["nesterov"] and (kw["momentum"] == 0 or kw["dampening"] != 0):
            continue
        cases.append(dict(lr=0.05, **kw))
    return cases


CASES = (
    [("SGD", kw) for kw in _sgd_cases()]
    + [
        (name, dict(lr=0.01, **kw))
        for name in ("Adam", "AdamW")
        for kw in _grid(
            amsgrad=[False, True],
            weight_decay=[0, 0.1],
            betas=[(0.9, 0.999), (0.8, 0.9)],
            maximize=[False, True],
        )
    ]
    + [
        ("RMSprop", dict(lr=0.01, **kw))
        for kw in _grid(
            centered=[False, True],
            momentum=[0, 0.5],
            weight_decay=[0, 0.1],
            alpha=[0.99, 0.9],
            maximize=[False, True],
        )
    ]
    + [
        ("Adagrad", dict(lr=0.1, **kw))
        for kw in _grid(
            lr_decay=[0, 0.1],
            weight_decay=[0, 0.1],
            initial_accumulator_value=[0, 0.1],
            maximize=[False, True],
        )
    ]
    + [
        ("Adadelta", kw)
        for kw in _grid(
            lr=[1.0, 0.5], rho=[0.9, 0.5], weight_decay=[0, 0.1], maximize=[False, True]
        )
    ]
    + [
        ("Adamax", dict(lr=0.01, **kw))
        for kw in _grid(
            betas=[(0.9, 0.999), (0.8, 0.9)], weight_decay=[0, 0.1], maximize=[False, True]
        )
    ]
    + [
        ("NAdam", dict(lr=0.01, **kw))
        for kw in _grid(
            weight_decay=[0, 0.1],
            decoupled_weight_decay=[False, True],
            momentum_decay=[4e-3, 1e-2],
            maximize=[False, True],
        )
    ]
    + [
        ("RAdam", dict(lr=0.01, **kw))
        for kw in _grid(
            weight_decay=[0, 0.1],
            decoupled_weight_decay=[False, True],
            betas=[(0.9, 0.999), (0.8, 0.9)],
            maximize=[False, True],
        )
    ]
)


def _case_id(case):
    name, kw = case
    return name + "-" + ",".join(f"{k}={v}" for k, v in kw.items())


def _make_params(dtype, rng):
    values = [rng.standard_normal(s) for s in SHAPES]
    kp = [kiln.nn.Parameter(kiln.tensor(v, dtype=dtype)) for v in values]
    tp = [
        torch.nn.Parameter(torch.tensor(v, dtype=getattr(torch, repr(dtype).split(".")[-1])))
        for v in values
    ]
    return kp, tp


def _set_grads(kp, tp, rng):
    """Gradients that depend on the params (0.3 * p + noise), so errors would compound."""
    for k, t in zip(kp, tp):
        noise = rng.standard_normal(tuple(t.shape))
        g = 0.3 * t.detach().double().numpy() + noise
        t.grad = torch.tensor(g, dtype=t.dtype)
        k.grad = kiln.tensor(g, dtype=k.dtype)


def _assert_params_close(kp, tp, tol):
    for k, t in zip(kp, tp):
        np.testing.assert_allclose(
            k.detach().double().numpy(), t.detach().double().numpy(), rtol=tol, atol=tol
        )


def _run(name, kw, dtype, steps=20, tol=None):
    rng = np.random.default_rng(0)
    kp, tp = _make_params(dtype, rng)
    ko = getattr(kiln.optim, name)(kp, **kw)
    to = getattr(torch.optim, name)(tp, **kw)
    for _ in range(steps):
        _set_grads(kp, tp, rng)
        ko.step()
        to.step()
    _assert_params_close(kp, tp, tol or (1e-10 if dtype == kiln.float64 else 2e-5))
    return ko, to, kp, tp


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_matches_torch_float64(case):
    _run(*case, kiln.float64)


@pytest.mark.parametrize(
    "name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam"]
)
def test_matches_torch_float32(name):
    kw = {"SGD": {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}}.get(
        name, {}
    )
    _run(name, kw, kiln.float32)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop", "Adagrad"])
def test_half_params_compute_in_float(name, dtype):
    """16-bit params are updated in float and rounded once: close to a float32 run."""
    kdt = getattr(kiln, dtype)
    rng = np.random.default_rng(1)
    values = [rng.standard_normal(s) for s in SHAPES]
    half = [kiln.nn.Parameter(kiln.tensor(v, dtype=kdt)) for v in values]
    full = [kiln.nn.Parameter(p.detach().float()) for p in half]
    kw = {"lr": 0.01, "momentum": 0.9} if name == "SGD" else {"lr": 0.01}
    oh = getattr(kiln.optim, name)(half, **kw)
    of = getattr(kiln.optim, name)(full, **kw)
    for _ in range(5):
        for h, f in zip(half, full):
            g = rng.standard_normal(tuple(h.shape))
            h.grad = kiln.tensor(g, dtype=kdt)
            f.grad = kiln.tensor(g, dtype=kdt).float()
        oh.step()
        of.step()
    for h, f in zip(half, full):
        assert h.dtype == kdt
        np.testing.assert_allclose(h.detach().float().numpy(), f.detach().numpy(), atol=3e-2)


def test_non_contiguous_param_is_updated_in_place():
    base = kiln.tensor(np.arange(12.0).reshape(3, 4))
    p = kiln.nn.Parameter(base.t())
    assert not p.is_contiguous()
    tp = torch.nn.Parameter(torch.tensor(np.arange(12.0).reshape(3, 4)).t())
    ko, to = kiln.optim.Adam([p], lr=0.1), torch.optim.Adam([tp], lr=0.1)
    for i in range(3):
        g = np.full((4, 3), 0.5) + i
        p.grad, tp.grad = kiln.tensor(g), torch.tensor(g)
        ko.step()
        to.step()
    np.testing.assert_allclose(p.detach().numpy(), tp.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(base.numpy(), tp.detach().t().numpy(), rtol=1e-12)


def test_param_groups_with_per_group_options_and_add_param_group():
    rng = np.random.default_rng(2)
    kp, tp = _make_params(kiln.float64, rng)
    ko = kiln.optim.SGD(
        [{"params": kp[:1]}, {"params": kp[1:2], "lr": 0.5, "momentum": 0.5}], lr=0.1, momentum=0.9
    )
    to = torch.optim.SGD(
        [{"params": tp[:1]}, {"params": tp[1:2], "lr": 0.5, "momentum": 0.5}], lr=0.1, momentum=0.9
    )
    for step in range(10):
        if step == 5:
            ko.add_param_group({"params": kp[2], "lr": 0.01})
            to.add_param_group({"params": tp[2], "lr": 0.01})
        _set_grads(kp, tp, rng)
        ko.step()
        to.step()
    _assert_params_close(kp, tp, 1e-12)
    assert [g["lr"] for g in ko.param_groups] == [0.1, 0.5, 0.01]
    assert [g["momentum"] for g in ko.param_groups] == [0.9, 0.5, 0.9]


def test_params_without_grad_are_skipped():
    a = kiln.nn.Parameter(kiln.ones(3))
    b = kiln.nn.Parameter(kiln.ones(3))
    opt = kiln.optim.Adam([a, b], lr=0.1)
    a.grad = kiln.ones(3)
    opt.step()
    assert b.tolist() == [1.0, 1.0, 1.0]
    assert a.tolist() != [1.0, 1.0, 1.0]
    assert b not in opt.state


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad(set_to_none):
    p = kiln.nn.Parameter(kiln.ones(3))
    p.grad = kiln.ones(3)
    kiln.optim.SGD([p], lr=0.1).zero_grad(set_to_none=set_to_none)
    if set_to_none:
        assert p.grad is None
    else:
        assert p.grad.tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    "case",
    [
        ("SGD", {"lr": 0.1, "momentum": 0.9}),
        ("Adam", {"lr": 0.01, "amsgrad": True}),
        ("AdamW", {}),
        ("RMSprop", {"centered": True, "momentum": 0.3}),
        ("Adagrad", {}),
        ("Adadelta", {}),
        ("Adamax", {}),
        ("NAdam", {}),
        ("RAdam", {}),
    ],
    ids=_case_id,
)
def test_state_dict_structure_and_resume(case):
    name, kw = case
    ko, to, kp, _ = _run(name, kw, kiln.float64, steps=10)
    ksd, tsd = ko.state_dict(), to.state_dict()
    # PyTorch's structure: integer param ids, same state entries, same group entries.
    assert sorted(ksd["state"]) == sorted(tsd["state"])
    for i in tsd["state"]:
        assert set(ksd["state"][i]) == set(tsd["state"][i])
        for key, tv in tsd["state"][i].items():
            kv = ksd["state"][i][key]
            if isinstance(tv, torch.Tensor):
                np.testing.assert_allclose(
                    np.asarray(kv.tolist(), dtype=np.float64),
                    tv.double().numpy(),
                    rtol=1e-9,
                    atol=1e-12,
                )
    assert [g["params"] for g in ksd["param_groups"]] == [g["params"] for g in tsd["param_groups"]]
    for kg, tg in zip(ksd["param_groups"], tsd["param_groups"]):
        for key in kg:
            if key in tg and key != "params":
                assert kg[key] == tg[key], key

    # A fresh optimizer over copies of the params, loaded from the state dict, continues
    # exactly like the original one.
    copies = [kiln.nn.Parameter(p.detach().clone()) for p in kp]
    resumed = getattr(kiln.optim, name)(copies, **kw)
    resumed.load_state_dict(ksd)
    rng = np.random.default_rng(5)
    for _ in range(10):
        grads = [rng.standard_normal(tuple(p.shape)) for p in kp]
        for p, c, g in zip(kp, copies, grads):
            p.grad, c.grad = kiln.tensor(g), kiln.tensor(g)
        ko.step()
        resumed.step()
    for p, c in zip(kp, copies):
        np.testing.assert_array_equal(p.detach().numpy(), c.detach().numpy())


def test_load_state_dict_errors():
    p = kiln.nn.Parameter(kiln.ones(2))
    opt = kiln.optim.SGD([p], lr=0.1)
    other = kiln.optim.SGD([p, kiln.nn.Parameter(kiln.ones(2))], lr=0.1)
    with pytest.raises(ValueError, match="doesn't match the size"):
        opt.load_state_dict(other.state_dict())
    with pytest.raises(ValueError, match="different number of parameter groups"):
        opt.load_state_dict({"state": {}, "param_groups": []})


def test_constructor_errors():
    p = kiln.nn.Parameter(kiln.ones(2))
    with pytest.raises(ValueError, match="Invalid learning rate"):
        kiln.optim.Adam([p], lr=-1)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1"):
        kiln.optim.Adam([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="Nesterov momentum requires"):
        kiln.optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="empty parameter list"):
        kiln.optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="iterable of Tensors"):
        kiln.optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        kiln.optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        kiln.optim.SGD([p.mul(2)], lr=0.1)


def test_fused_kernel_errors_name_the_op():
    p = kiln.ones(2)
    s = [kiln.zeros(2)]
    step = [kiln.tensor(0.0)]
    kw = {
        "lr": 0.1,
        "beta1": 0.9,
        "beta2": 0.99,
        "eps": 1e-8,
        "weight_decay": 0.0,
        "amsgrad": False,
        "maximize": False,
        "decoupled_weight_decay": False,
    }
    with pytest.raises(ValueError, match=r"\[adam_step_\] grad 0 has shape \[3\]"):
        kiln._C._adam_step_([p], [kiln.ones(3)], s, s, [], step, **kw)
    with pytest.raises(ValueError, match=r"\[adam_step_\] exp_avg\[0\] must be"):
        kiln._C._adam_step_([p], [kiln.ones(2)], [kiln.zeros(3)], s, [], step, **kw)
    with pytest.raises(TypeError, match=r"\[adam_step_\] params must be floating point"):
        kiln._C._adam_step_(
            [kiln.ones(2, dtype=kiln.int64)], [kiln.ones(2, dtype=kiln.int64)], s, s, [], step, **kw
        )


def test_step_is_one_call_and_records_no_graph():
    p = kiln.nn.Parameter(kiln.ones(3))
    p.grad = kiln.ones(3)
    v = p._version
    kiln.optim.Adam([p], lr=0.1).step()
    assert p.grad_fn is None and p.is_leaf
    assert p._version > v  # in-place update is visible to autograd's version checks


def test_closure_is_called_with_grad_enabled():
    p = kiln.nn.Parameter(kiln.ones(3))
    opt = kiln.optim.SGD([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = p.mul(p).sum()
        loss.backward()
        return loss

    with kiln.no_grad():
        loss = opt.step(closure)
    assert loss.item() == 3.0
    np.testing.assert_allclose(p.detach().numpy(), [0.8] * 3)


# ---- LBFGS ------------------------------------------------------------------------------


def _lbfgs_loss(lib, x, y):
    # A Rosenbrock-like valley over two parameter tensors.
    a = x.sub(1.0)
    b = y.sub(x.mul(x))
    return a.mul(a).sum().add(b.mul(b).mul(10.0).sum())


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
@pytest.mark.parametrize("history_size", [100, 3])
def test_lbfgs_matches_torch(line_search_fn, history_size):
    rng = np.random.default_rng(3)
    x0, y0 = rng.standard_normal(4) * 0.5, rng.standard_normal(4) * 0.5
    kx, ky = kiln.nn.Parameter(kiln.tensor(x0)), kiln.nn.Parameter(kiln.tensor(y0))
    tx, ty = torch.nn.Parameter(torch.tensor(x0)), torch.nn.Parameter(torch.tensor(y0))
    kw = {
        "lr": 0.5 if line_search_fn is None else 1,
        "max_iter": 8,
        "history_size": history_size,
        "line_search_fn": line_search_fn,
    }
    ko, to = kiln.optim.LBFGS([kx, ky], **kw), torch.optim.LBFGS([tx, ty], **kw)

    def closure(opt, lib, x, y):
        def f():
            opt.zero_grad()
            loss = _lbfgs_loss(lib, x, y)
            loss.backward()
            return loss

        return f

    for _ in range(4):
        kl = ko.step(closure(ko, kiln, kx, ky))
        tl = to.step(closure(to, torch, tx, ty))
        assert abs(kl.item() - tl.item()) < 1e-8
    np.testing.assert_allclose(kx.detach().numpy(), tx.detach().numpy(), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(ky.detach().numpy(), ty.detach().numpy(), rtol=1e-7, atol=1e-9)
    assert ko.state[kx]["func_evals"] == to.state[tx]["func_evals"]
    assert ko.state[kx]["n_iter"] == to.state[tx]["n_iter"]
