"""kiln.nn.utils against torch.nn.utils: gradient clipping and parameter vectors."""

import math

import kiln
import numpy as np
import pytest
from compare import require_torch

torch = require_torch()


def twin_params(grads, rng, dtype=np.float32):
    """kiln and torch parameters with the same values and the given gradients (None = no grad)."""
    kps, tps = [], []
    for g in grads:
        shape = np.shape(g) if g is not None else (3,)
        value = rng.standard_normal(shape).astype(dtype)
        kp = kiln.nn.Parameter(kiln.tensor(value))
        tp = torch.nn.Parameter(torch.tensor(value))
        if g is not None:
            kp.grad = kiln.tensor(np.asarray(g, dtype=dtype))
            tp.grad = torch.tensor(np.asarray(g, dtype=dtype))
        kps.append(kp)
        tps.append(tp)
    return kps, tps


def assert_grads_equal(kps, tps, rtol=1e-6):
    for kp, tp in zip(kps, tps):
        if tp.grad is None:
            assert kp.grad is None
        else:
            np.testing.assert_allclose(kp.grad.numpy(), tp.grad.numpy(), rtol=rtol, atol=1e-7)


def some_grads(rng, scale):
    return [
        scale * rng.standard_normal((4, 5)),
        None,
        scale * rng.standard_normal(7),
        scale * rng.standard_normal((2, 3, 2)),
    ]


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3, math.inf, "inf"])
@pytest.mark.parametrize("scale", [10.0, 0.01])  # clipped, and left alone (factor clamped to 1)
def test_clip_grad_norm_matches_torch(norm_type, scale):
    rng = np.random.default_rng(0)
    kps, tps = twin_params(some_grads(rng, scale), rng)
    ktotal = kiln.nn.utils.clip_grad_norm_(kps, max_norm=0.5, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tps, max_norm=0.5, norm_type=norm_type)
    assert isinstance(ktotal, kiln.Tensor) and ktotal.dim() == 0
    np.testing.assert_allclose(ktotal.item(), ttotal.item(), rtol=1e-6)
    assert_grads_equal(kps, tps)


def test_clip_grad_norm_accepts_a_generator_a_tensor_and_no_grads():
    rng = np.random.default_rng(1)
    kps, tps = twin_params(some_grads(rng, 5.0), rng, np.float64)
    model = kiln.nn.Linear(2, 2)
    model.weight.grad = kiln.full((2, 2), 3.0)
    # A generator is read twice internally (for the norm and for the scaling).
    kiln.nn.utils.clip_grad_norm_((p for p in kps), 1.0)
    torch.nn.utils.clip_grad_norm_((p for p in tps), 1.0)
    assert_grads_equal(kps, tps, rtol=1e-12)
    total = kiln.nn.utils.clip_grad_norm_(model.weight, 1.0)  # a single tensor
    assert total.item() == pytest.approx(6.0)
    np.testing.assert_allclose(
        model.weight.grad.numpy(), np.full((2, 2), 3.0 / (6.0 + 1e-6)), rtol=1e-6
    )
    assert kiln.nn.utils.clip_grad_norm_(kiln.nn.Linear(2, 2).parameters(), 1.0).item() == 0.0


def test_clip_grad_norm_nonfinite():
    kp = kiln.nn.Parameter(kiln.zeros(2))
    kp.grad = kiln.tensor([1.0, float("inf")])
    with pytest.raises(RuntimeError, match=r"\[clip_grad_norm_\] the total norm of order 2.0"):
        kiln.nn.utils.clip_grad_norm_([kp], 1.0, error_if_nonfinite=True)
    tp = torch.nn.Parameter(torch.zeros(2))
    tp.grad = torch.tensor([1.0, float("inf")])
    ktotal = kiln.nn.utils.clip_grad_norm_([kp], 1.0)  # clips anyway, as torch does
    ttotal = torch.nn.utils.clip_grad_norm_([tp], 1.0)
    assert math.isinf(ktotal.item()) and math.isinf(ttotal.item())
    np.testing.assert_array_equal(kp.grad.numpy(), tp.grad.numpy())


def test_get_total_norm_and_clip_grads_with_norm_match_torch():
    rng = np.random.default_rng(2)
    kps, tps = twin_params(some_grads(rng, 4.0), rng)
    kgrads = [p.grad for p in kps if p.grad is not None]
    tgrads = [p.grad for p in tps if p.grad is not None]
    ktotal = kiln.nn.utils.get_total_norm(kgrads, norm_type=1.0)
    ttotal = torch.nn.utils.get_total_norm(tgrads, norm_type=1.0)
    np.testing.assert_allclose(ktotal.item(), ttotal.item(), rtol=1e-6)
    kiln.nn.utils.clip_grads_with_norm_(kps, 2.0, ktotal)
    torch.nn.utils.clip_grads_with_norm_(tps, 2.0, ttotal)
    assert_grads_equal(kps, tps)
    assert kiln.nn.utils.get_total_norm([]).item() == 0.0


def test_clip_grad_value_matches_torch():
    rng = np.random.default_rng(3)
    kps, tps = twin_params(some_grads(rng, 1.0), rng)
    assert kiln.nn.utils.clip_grad_value_(kps, 0.3) is None
    torch.nn.utils.clip_grad_value_(tps, 0.3)
    assert_grads_equal(kps, tps)
    assert max(abs(p.grad).max().item() for p in kps if p.grad is not None) == pytest.approx(0.3)


def test_parameters_to_vector_and_back():
    kmodel, tmodel = kiln.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    tmodel.load_state_dict({k: torch.tensor(v.numpy()) for k, v in kmodel.state_dict().items()})
    kvec = kiln.nn.utils.parameters_to_vector(kmodel.parameters())
    tvec = torch.nn.utils.parameters_to_vector(tmodel.parameters())
    np.testing.assert_array_equal(kvec.detach().numpy(), tvec.detach().numpy())
    kvec.sum().backward()  # the vector is differentiable
    np.testing.assert_array_equal(kmodel.weight.grad.numpy(), np.ones((2, 3), np.float32))

    new = np.arange(8, dtype=np.float32)
    weight = kmodel.weight
    kiln.nn.utils.vector_to_parameters(kiln.tensor(new), kmodel.parameters())
    torch.nn.utils.vector_to_parameters(torch.tensor(new), tmodel.parameters())
    assert kmodel.weight is weight  # the Parameter objects stay, their data change
    for (kn, kp), (tn, tp) in zip(kmodel.named_parameters(), tmodel.named_parameters()):
        assert kn == tn
        np.testing.assert_array_equal(kp.detach().numpy(), tp.detach().numpy())


def test_vector_to_parameters_bad_input():
    model = kiln.nn.Linear(3, 2)
    with pytest.raises(TypeError, match=r"\[vector_to_parameters\] expected a kiln.Tensor"):
        kiln.nn.utils.vector_to_parameters(np.zeros(8), model.parameters())
    with pytest.raises(ValueError, match=r"\[vector_to_parameters\] .*at least 8 elements .*\[5\]"):
        kiln.nn.utils.vector_to_parameters(kiln.zeros(5), model.parameters())
