"""The autograd engine's feature set: backward/grad options, graph introspection, hooks,
grad modes, version counters, double backward, and the GIL during backward.
(Custom Functions, gradcheck and anomaly mode: test_autograd_function.py.)"""

import sys
import threading
import time

import kiln
import numpy as np
import pytest
from compare import assert_close, both, randn, require_torch
from kiln.autograd import gradcheck, gradgradcheck


def leaf(values, dtype=kiln.float64):
    return kiln.tensor(values, dtype=dtype, requires_grad=True)


# ---- requires_grad ---------------------------------------------------------------------


def test_requires_grad_flags():
    x = kiln.ones(2)
    assert not x.requires_grad and x.is_leaf and x.grad_fn is None
    assert x.requires_grad_() is x and x.requires_grad
    x.requires_grad = False
    assert not x.requires_grad
    y = leaf([1.0]) * 2
    assert y.requires_grad and not y.is_leaf
    assert not (kiln.ones(2) * 2).requires_grad
    with pytest.raises(RuntimeError, match="leaf"):
        y.requires_grad_(False)
    assert y.requires_grad_() is y  # a no-op on a non-leaf, as in PyTorch
    with pytest.raises(RuntimeError, match="leaf"):
        y.requires_grad = True
    with pytest.raises(RuntimeError, match="floating point"):
        kiln.ones(2, dtype=kiln.int64).requires_grad_()
    assert kiln.ones(2, dtype=kiln.int64).requires_grad_(False).requires_grad is False
    d = y.detach()
    assert not d.requires_grad and d.is_leaf and d.data_ptr() == y.data_ptr()


# ---- backward ---------------------------------------------------------------------------


def test_backward_gradient_argument_matches_torch():
    torch = require_torch()
    kx, tx = both(randn(3, 4), requires_grad=True)
    kg, tg = both(randn(3, 4))
    (kx * kx).backward(gradient=kg)
    (tx * tx).backward(gradient=tg)
    assert_close(kx.grad, tx.grad)
    with pytest.raises(RuntimeError, match="only for scalar outputs"):
        (kx * 2).backward()
    with pytest.raises(ValueError, match="shape"):
        (kx * 2).backward(kiln.ones(4, dtype=kiln.float64))
    with pytest.raises(RuntimeError, match="does not require grad"):
        kiln.ones(2).sum().backward()
    del torch


def test_grad_accumulates_on_leaves_across_calls():
    x = leaf([1.0, 2.0])
    (x * 3).sum().backward()
    (x * x).sum().backward()
    assert x.grad.tolist() == [5.0, 7.0]
    (x * 1).sum().backward()
    assert x.grad.tolist() == [6.0, 8.0]
    x.grad = None
    (x * 2).sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]


def test_grad_is_owned_and_contiguous():
    x = leaf([1.0, 2.0, 3.0])
    x.sum().backward()  # the gradient is an expanded ones tensor
    assert x.grad.is_contiguous() and x.grad.stride() == (1,)
    x.grad.zero_()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="shape"):
        x.grad = kiln.ones(2, dtype=kiln.float64)
    with pytest.raises(TypeError, match="dtype"):
        x.grad = kiln.ones(3, dtype=kiln.float32)


def test_retain_graph():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.tolist() == [4.0, 8.0]
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_backward_inputs_restricts_accumulation():
    require_torch()
    kx, tx = both(randn(3), requires_grad=True)
    ky, ty = both(randn(3), requires_grad=True)
    (kx * ky).sum().backward(inputs=[kx])
    (tx * ty).sum().backward(inputs=[tx])
    assert_close(kx.grad, tx.grad)
    assert ky.grad is None and ty.grad is None
    (kx * ky).sum().backward(inputs=kx)
    (tx * ty).sum().backward(inputs=tx)
    assert_close(kx.grad, tx.grad)
    kx.grad = None
    (kx * 5).sum().backward(inputs=[kx])
    assert kx.grad.is_contiguous()
    kx.grad.add_(1)  # owned memory
    assert kx.grad.tolist() == [6.0] * 3


def test_backward_inputs_non_leaf():
    x = leaf([1.0, 2.0])
    h = x * 3
    (h * h).sum().backward(inputs=[h])
    assert h.grad.tolist() == [6.0, 12.0]
    assert x.grad is None


def test_create_graph_keeps_grad_history():
    x = leaf([1.0, 2.0])
    (x * x * x).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    assert x.grad.tolist() == [3.0, 12.0]
    (g2,) = kiln.autograd.grad(x.grad.sum(), x)
    assert g2.tolist() == [6.0, 12.0]


# ---- autograd.grad -----------------------------------------------------------------------


def test_autograd_grad_options():
    x = leaf([1.0, 2.0, 3.0])
    y = leaf([4.0, 5.0, 6.0])
    z = leaf([0.0])
    out = x * y
    gx, gy = kiln.autograd.grad(out, (x, y), grad_outputs=kiln.ones(3, dtype=kiln.float64) * 2,
                                retain_graph=True)
    assert gx.tolist() == [8.0, 10.0, 12.0] and gy.tolist() == [2.0, 4.0, 6.0]
    assert x.grad is None and y.grad is None
    with pytest.raises(RuntimeError, match="allow_unused"):
        kiln.autograd.grad(out.sum(), [x, z], retain_graph=True)
    gx, gz = kiln.autograd.grad(out.sum(), [x, z], allow_unused=True, retain_graph=True)
    assert gx.tolist() == [4.0, 5.0, 6.0] and gz is None
    gx, gz = kiln.autograd.grad(out.sum(), [x, z], materialize_grads=True, retain_graph=True)
    assert gz.tolist() == [0.0]
    (g,) = kiln.autograd.grad([out.sum(), (x * x).sum()], [x])
    assert g.tolist() == [6.0, 9.0, 12.0]
    with pytest.raises(RuntimeError, match="second time"):
        kiln.autograd.grad(out.sum(), [x])
    with pytest.raises(RuntimeError, match="does not require grad"):
        kiln.autograd.grad((x * 2).sum(), [kiln.ones(1)])
    with pytest.raises(ValueError, match="grad_outputs"):
        kiln.autograd.grad([x.sum()], [x], grad_outputs=[None, None])


def test_autograd_grad_wrt_intermediate_and_multiple_roots():
    torch = require_torch()
    kx, tx = both(randn(4), requires_grad=True)
    kh, th = kx * 2, tx * 2
    ko, to = (kh * kh).sum(), (th * th).sum()
    ka, ta = kiln.autograd.grad(ko, [kh, kx], retain_graph=True), torch.autograd.grad(
        to, [th, tx], retain_graph=True)
    assert_close(list(ka), list(ta))
    ku, tu = kh * 3, th * 3
    kgo, tgo = both(randn(4))
    assert_close(kiln.autograd.grad([ko, ku], [kx], [None, kgo]),
                 torch.autograd.grad([to, tu], [tx], [None, tgo]))


# ---- graph introspection -----------------------------------------------------------------


def test_grad_fn_name_and_next_functions():
    x = leaf([1.0, 2.0])
    c = kiln.tensor([3.0, 4.0], dtype=kiln.float64)
    y = (x * c).exp() + x
    assert y.grad_fn.name() == "AddBackward0"
    (exp_fn, i0), (acc, i1) = y.grad_fn.next_functions
    assert exp_fn.name() == "ExpBackward0" and (i0, i1) == (0, 0)
    assert acc.name() == "AccumulateGrad" and acc.variable is x
    (mul_fn, _), = exp_fn.next_functions
    assert mul_fn.name() == "MulBackward0"
    (acc2, _), (none, _) = mul_fn.next_functions
    assert acc2 == acc and none is None  # one accumulator per leaf; constants have no edge
    assert repr(y.grad_fn) == "<AddBackward0>"
    assert x.grad_fn is None


def test_grad_fn_matches_torch_names():
    require_torch()
    kx, tx = both(randn(3), requires_grad=True)
    for kf, tf in [(lambda a: a * 2, None), (lambda a: a + 1, None), (lambda a: a - a, None),
                   (lambda a: a / 2, None), (lambda a: -a, None), (lambda a: a.exp(), None),
                   (lambda a: a.sum(0), None), (lambda a: a.clone(), None),
                   (lambda a: a.view(3, 1), None), (lambda a: a.unsqueeze(0), None),
                   (lambda a: a.expand(2, 3), None)]:
        tf = tf or kf
        assert kf(kx).grad_fn.name() == type(tf(tx).grad_fn).__name__


# ---- retain_grad and hooks -----------------------------------------------------------------


def test_retain_grad():
    x = leaf([1.0, 2.0])
    h = x * 2
    assert not h.retains_grad
    h.retain_grad()
    h.retain_grad()  # idempotent
    assert h.retains_grad
    (h * h).sum().backward()
    assert h.grad.tolist() == [4.0, 8.0]
    assert x.grad.tolist() == [8.0, 16.0]
    h2 = x * 2
    (h2 * h2).sum().backward()
    assert h2.grad is None
    x.retain_grad()  # leaves: no-op
    with pytest.raises(RuntimeError, match="requires_grad=False"):
        kiln.ones(2).retain_grad()


def test_hooks_observe_and_replace():
    x = leaf([1.0, 2.0])
    seen = []
    hx = x.register_hook(lambda g: seen.append(("x", g.tolist())))
    h = x * 3
    hh = h.register_hook(lambda g: g * 10)
    (h * 1).sum().backward()
    assert seen == [("x", [30.0, 30.0])]
    assert x.grad.tolist() == [30.0, 30.0]
    hh.remove()
    hx.remove()
    x.grad = None
    seen.clear()
    h2 = x * 3
    h2.sum().backward()
    assert seen == [] and x.grad.tolist() == [3.0, 3.0]
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        kiln.ones(2).register_hook(lambda g: g)


def test_leaf_hook_replaces_grad_and_runs_for_autograd_grad():
    x = leaf([1.0, 2.0])
    x.register_hook(lambda g: g + 1)
    (g,) = kiln.autograd.grad((x * 2).sum(), [x])
    assert g.tolist() == [3.0, 3.0]
    (x * 2).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


def test_hook_order_and_retain_grad_sees_hooked_grad():
    torch = require_torch()
    for lib in (kiln, torch):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        h = x * 2
        h.register_hook(lambda g: g * 2)
        h.retain_grad()
        h.sum().backward()
        assert h.grad.tolist() == [2.0, 2.0], lib
        assert x.grad.tolist() == [4.0, 4.0]


def test_hook_changing_shape_or_dtype_is_refused():
    x = leaf([1.0, 2.0])
    h = x * 1
    h.register_hook(lambda g: g.sum())
    with pytest.raises(RuntimeError, match=r"\[register_hook\].*shape"):
        h.sum().backward()
    y = leaf([1.0, 2.0])
    y.register_hook(lambda g: g.float())
    with pytest.raises(RuntimeError, match=r"\[register_hook\].*dtype"):
        (y * 2).sum().backward()


def test_autograd_grad_runs_only_hooks_on_the_path_to_inputs():
    x = leaf([1.0])
    y = leaf([2.0])
    calls = []
    y.register_hook(lambda g: calls.append("y"))
    x.register_hook(lambda g: calls.append("x"))
    kiln.autograd.grad((x * y).sum(), [x])
    assert calls == ["x"]


def test_hook_exception_propagates():
    x = leaf([1.0])

    def bad(g):
        raise KeyError("boom")

    x.register_hook(bad)
    with pytest.raises(KeyError, match="boom"):
        (x * 2).sum().backward()


# ---- grad modes ----------------------------------------------------------------------------


def test_no_grad_and_enable_grad_as_context_managers():
    x = leaf([1.0])
    with kiln.no_grad():
        assert not kiln.is_grad_enabled()
        y = x * 2
        with kiln.enable_grad():
            z = x * 2
    assert kiln.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad


def test_grad_modes_as_decorators():
    x = leaf([1.0])

    @kiln.no_grad()
    def f1():
        return x * 2

    @kiln.no_grad
    def f2():
        return x * 2

    @kiln.enable_grad()
    def f3():
        return x * 2

    @kiln.set_grad_enabled(False)
    def f4():
        return x * 2

    @kiln.inference_mode()
    def f5():
        assert kiln.is_inference_mode_enabled()
        return x * 2

    @kiln.inference_mode
    def f6():
        return x * 2

    assert kiln.is_grad_enabled()  # decorating changes nothing
    assert not f1().requires_grad and not f2().requires_grad
    assert not f4().requires_grad and not f5().requires_grad and not f6().requires_grad
    with kiln.no_grad():
        assert f3().requires_grad
    assert f1.__name__ == "f1"
    assert kiln.is_grad_enabled() and not kiln.is_inference_mode_enabled()


def test_set_grad_enabled_function_and_context():
    x = leaf([1.0])
    with kiln.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert kiln.is_grad_enabled()
    kiln.set_grad_enabled(False)
    try:
        assert not kiln.is_grad_enabled()
    finally:
        kiln.set_grad_enabled(True)
    with kiln.no_grad(), kiln.set_grad_enabled(True):
        assert (x * 2).requires_grad


def test_inference_mode():
    x = leaf([1.0])
    with kiln.inference_mode():
        assert kiln.is_inference_mode_enabled() and not kiln.is_grad_enabled()
        assert not (x * 2).requires_grad
        with kiln.inference_mode(False):
            assert not kiln.is_inference_mode_enabled()
    assert not kiln.is_inference_mode_enabled() and kiln.is_grad_enabled()


def test_grad_mode_restored_after_exception():
    with pytest.raises(ZeroDivisionError), kiln.no_grad():
        raise ZeroDivisionError
    assert kiln.is_grad_enabled()


def test_grad_mode_is_thread_local():
    x = leaf([1.0])
    entered, checked = threading.Event(), threading.Event()
    result = {}

    def other():
        entered.wait()
        result["enabled"] = kiln.is_grad_enabled()
        result["records"] = (x * 2).requires_grad
        checked.set()

    t = threading.Thread(target=other)
    t.start()
    with kiln.no_grad():
        entered.set()
        checked.wait()
        assert not (x * 2).requires_grad
    t.join()
    assert result == {"enabled": True, "records": True}

    def disable():
        kiln.set_grad_enabled(False)
        result["other"] = kiln.is_grad_enabled()

    t = threading.Thread(target=disable)
    t.start()
    t.join()
    assert result["other"] is False and kiln.is_grad_enabled()


# ---- version counters -------------------------------------------------------------------------


def test_modifying_saved_input_raises_at_backward():
    x = leaf([1.0, 2.0])
    a = x * 1
    y = a * a  # saves a
    a.mul_(2)
    with pytest.raises(RuntimeError, match=r"modified by an inplace operation.*MulBackward0"):
        y.sum().backward()


def test_modifying_saved_output_raises_at_backward():
    x = leaf([1.0, 2.0])
    y = x.exp()  # saves its output
    y.add_(1)
    with pytest.raises(RuntimeError, match=r"modified by an inplace operation.*ExpBackward0"):
        y.sum().backward()


def test_modifying_through_a_view_or_detach_is_caught():
    x = leaf([1.0, 2.0])
    a = x * 1
    y = a * a
    a.detach().fill_(5)  # shares the version counter with `a`
    with pytest.raises(RuntimeError, match="inplace"):
        y.sum().backward()
    c = kiln.tensor([1.0, 2.0], dtype=kiln.float64)
    z = x * c
    c.transpose(0, 0).add_(1)
    with pytest.raises(RuntimeError, match="inplace"):
        z.sum().backward()


def test_version_counter_values():
    t = kiln.zeros(3)
    v0 = t._version
    t.add_(1)
    t.fill_(2)
    assert t._version == v0 + 2
    assert t.view(3)._version == t._version


def test_inplace_not_saved_is_fine():
    x = leaf([1.0, 2.0])
    a = x * 1
    y = a + 1  # AddBackward saves nothing
    a.mul_(3)
    y.sum().backward()  # y was computed before the in-place op
    assert x.grad.tolist() == [1.0, 1.0]


# ---- double backward -------------------------------------------------------------------------


@pytest.mark.parametrize("name,fn", [
    ("mul", lambda a, b: a * b * a),
    ("div", lambda a, b: a / (b * b + 1)),
    ("exp", lambda a, b: (a * b).exp()),
    ("sub_neg", lambda a, b: -(a - b) * a),
    ("sum_dim", lambda a, b: (a * a).sum(0) * b.sum()),
    ("views", lambda a, b: a.transpose(0, 1).reshape(6) * b.view(6).exp()),
    ("broadcast", lambda a, b: a * b.sum(0, keepdim=True)),
])
def test_gradgradcheck_core_ops(name, fn):
    a = kiln.tensor(randn(2, 3), requires_grad=True)
    b = kiln.tensor(randn(2, 3, rng=np.random.default_rng(1)), requires_grad=True)
    assert gradcheck(fn, (a, b))
    assert gradgradcheck(fn, (a, b))


def test_double_backward_matches_torch():
    torch = require_torch()
    kx, tx = both(randn(4), requires_grad=True)
    ky, ty = both(randn(4), requires_grad=True)
    kf = lambda x, y: (x * x * y).exp().sum() / (y * y + 1).sum()
    (kg,) = kiln.autograd.grad(kf(kx, ky), [kx], create_graph=True)
    (tg,) = torch.autograd.grad(kf(tx, ty), [tx], create_graph=True)
    assert_close(kg, tg)
    kgg = kiln.autograd.grad((kg * kg).sum(), [kx, ky])
    tgg = torch.autograd.grad((tg * tg).sum(), [tx, ty])
    assert_close(list(kgg), list(tgg))


def test_triple_backward():
    x = leaf([2.0])
    y = x * x * x * x  # x^4
    (g1,) = kiln.autograd.grad(y.sum(), x, create_graph=True)
    (g2,) = kiln.autograd.grad(g1.sum(), x, create_graph=True)
    (g3,) = kiln.autograd.grad(g2.sum(), x)
    assert (g1.item(), g2.item(), g3.item()) == (32.0, 48.0, 48.0)


# ---- the GIL during backward ---------------------------------------------------------------


def test_backward_releases_the_gil():
    """A Python thread makes progress while the engine runs C++ between two Python hooks.

    With a huge switch interval the interpreter never takes the GIL away from a thread
    on its own, so the worker can run only if the engine releases it.
    """
    x = kiln.ones(200_000, dtype=kiln.float64, requires_grad=True)
    y = x
    for _ in range(150):
        y = y * 1.0001
    counter = [0]
    stop = threading.Event()
    ready = threading.Event()

    def work():
        ready.set()
        while not stop.is_set():
            counter[0] += 1
            if counter[0] % 64 == 0:
                time.sleep(0)  # a GIL hand-off point (not a wait): lets the main thread back in

    marks = []
    y.register_hook(lambda g: marks.append(counter[0]))  # runs first
    x.register_hook(lambda g: marks.append(counter[0]))  # runs last
    old = sys.getswitchinterval()
    worker = threading.Thread(target=work)
    worker.start()
    ready.wait()
    sys.setswitchinterval(1000.0)
    try:
        y.sum().backward()
    finally:
        sys.setswitchinterval(old)
        stop.set()
        worker.join()
    assert len(marks) == 2
    assert marks[1] > marks[0]
    assert_close(x.grad, kiln.full((200_000,), 1.0001 ** 150, dtype=kiln.float64))


def test_backward_from_several_threads():
    results = {}

    def run(i):
        x = kiln.tensor([float(i)], dtype=kiln.float64, requires_grad=True)
        (x * x * x).sum().backward()
        results[i] = x.grad.item()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: 3.0 * i * i for i in range(4)}


def test_concurrent_backward_into_one_leaf_loses_no_update():
    # Backward runs without the GIL, so these accumulations really overlap.
    x = kiln.ones(300_000, dtype=kiln.float64, requires_grad=True)

    def run():
        for _ in range(20):
            (x * 2).sum().backward()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert_close(x.grad, kiln.full((300_000,), 2.0 * 20 * 4, dtype=kiln.float64))
