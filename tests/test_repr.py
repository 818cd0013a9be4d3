"""repr/str match PyTorch's output ("torch." replaced by "kiln.")."""

import kiln
import numpy as np
import pytest
from compare import require_torch, torch_dtype


def _both(values, dtype="float32"):
    torch = require_torch()
    arr = np.asarray(values)
    k = kiln.tensor(arr).to(getattr(kiln, dtype))
    t = torch.tensor(arr).to(torch_dtype(getattr(kiln, dtype)))
    return k, t


def _same(k, t):
    want = repr(t).replace("torch.", "kiln.")
    assert repr(k) == want, f"\nkiln:  {k!r}\ntorch: {want}"
    assert str(k) == want


rng = np.random.default_rng(0)

FLOAT_CASES = {
    "ints_padded": [3.0, 12.0],
    "negative_ints": [-1.0, 20.0, 300.0],
    "fixed": [0.5, -1.25, 3.14159],
    "fixed_2d": [[1.5, -2.25], [100.125, 0.0]],
    "sci_small": [1e-5, 1.0],
    "sci_big_ratio": [0.001, 2.5, 10.0],
    "sci_big": [1e9, 1.5],
    "int_sci": [1.0, 1e9],
    "int_ratio": [1.0, 5000.0],
    "all_zero": [0.0, 0.0],
    "neg_zero": [-0.0, 1.5],
    "nan_inf": [float("nan"), float("inf"), -float("inf"), 1.0],
    "nan_only": [float("nan"), float("nan")],
    "inf_fixed": [float("inf"), 0.25],
    "scalar": 2.5,
    "scalar_int_valued": 7.0,
    "scalar_nan": float("nan"),
    "random_3d": rng.standard_normal((2, 3, 4)).tolist(),
    "random_4d": rng.standard_normal((2, 2, 2, 3)).tolist(),
    "long_row": rng.standard_normal(40).tolist(),
    "long_int_row": list(range(-30, 30)),
    "wide_2d": (rng.standard_normal((3, 30)) * 1000).tolist(),
    "summarized_1d": np.linspace(-5, 5, 2000).tolist(),
    "summarized_2d": rng.standard_normal((50, 40)).tolist(),
    "summarized_3d": np.arange(3000.0).reshape(10, 10, 30).tolist(),
    "summarized_small_dim0": rng.standard_normal((2, 1001)).tolist(),
}


@pytest.mark.parametrize("name", sorted(FLOAT_CASES))
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_float_tensors(name, dtype):
    values = FLOAT_CASES[name]
    if dtype in ("float16", "bfloat16") and name in ("sci_big", "int_sci"):
        values = np.clip(values, -6e4, 6e4).tolist() if dtype == "float16" else values
    _same(*_both(values, dtype))


@pytest.mark.parametrize("dtype", ["int64", "int32", "int16", "int8", "uint8"])
@pytest.mark.parametrize("values", [[1, 2, 3], [[-5, 10], [100, 7]], 42, list(range(1500)),
                                    [[0, -120], [3, 4]]])
def test_integer_tensors(dtype, values):
    if dtype == "uint8":
        values = np.abs(np.asarray(values)) % 256
    elif dtype == "int8":
        values = np.asarray(values) % 100
    _same(*_both(values, dtype))


@pytest.mark.parametrize("values", [[True, False, True], [[True], [False]], True,
                                    [True] * 1200])
def test_bool_tensors(values):
    _same(*_both(values, "bool"))


@pytest.mark.parametrize("shape", [(0,), (0, 3), (2, 0, 4), (3, 0)])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "bool", "int32"])
def test_empty_tensors(shape, dtype):
    torch = require_torch()
    k = kiln.zeros(*shape, dtype=getattr(kiln, dtype))
    t = torch.zeros(*shape, dtype=torch_dtype(getattr(kiln, dtype)))
    _same(k, t)


def test_autograd_suffixes():
    torch = require_torch()
    k, t = _both([1.0, 2.0, 3.0])
    k.requires_grad_()
    t.requires_grad_()
    _same(k, t)
    _same(k * 2, t * 2)
    _same(k + 1, t + 1)
    _same((k * k).sum(0), (t * t).sum(0))
    _same(k.exp(), t.exp())
    kd, td = _both([1.0, 2.0], "float64")
    kd.requires_grad_()
    td.requires_grad_()
    _same(kd / 3, td / 3)
    _same(kiln.zeros(0, 2, requires_grad=True), torch.zeros(0, 2, requires_grad=True))
    del torch


def test_noncontiguous_views_print_their_values():
    k, t = _both(np.arange(12.0).reshape(3, 4))
    _same(k.transpose(0, 1), t.transpose(0, 1))
    _same(k.expand(2, 3, 4), t.expand(2, 3, 4))


def test_long_suffix_wraps_to_next_line():
    torch = require_torch()
    vals = np.arange(10.0) * 1.5
    k, t = _both(vals, "float64")
    k.requires_grad_()
    t.requires_grad_()
    _same(k * 1, t * 1)
    del torch


def test_non_cpu_device_suffix():
    k = kiln.tensor([1.0, 2.0])
    s = kiln._tensor_str
    # Devices other than cpu are named; exercise the formatting without a GPU.
    class FakeDevice:
        type = "cuda"

        def __str__(self):
            return "cuda:1"

    class Fake:
        device = FakeDevice()
        dtype = kiln.float32
        grad_fn = None
        requires_grad = False
        shape = (2,)
        ndim = 1

        def numel(self):
            return 2

        def detach(self):
            return self

        def cpu(self):
            return k

    assert s.tensor_repr(Fake()) == "tensor([1., 2.], device='cuda:1')"


def test_default_dtype_changes_suffix():
    prev = kiln.get_default_dtype()
    try:
        kiln.set_default_dtype(kiln.float64)
        assert repr(kiln.ones(2, dtype=kiln.float64)) == "tensor([1., 1.])"
        assert repr(kiln.ones(2, dtype=kiln.float32)) == "tensor([1., 1.], dtype=kiln.float32)"
    finally:
        kiln.set_default_dtype(prev)


def test_set_printoptions_matches_torch():
    torch = require_torch()
    k, t = _both(np.linspace(0, 1, 30))
    try:
        for kwargs in [{"precision": 2}, {"threshold": 5}, {"edgeitems": 1, "threshold": 5},
                       {"linewidth": 40}, {"sci_mode": True}, {"profile": "short"},
                       {"profile": "full"}]:
            kiln.set_printoptions(**kwargs)
            torch.set_printoptions(**kwargs)
            _same(k, t)
            kiln.set_printoptions(profile="default")
            torch.set_printoptions(profile="default")
    finally:
        kiln.set_printoptions(profile="default")
        torch.set_printoptions(profile="default")
    with pytest.raises(ValueError, match=r"\[set_printoptions\]"):
        kiln.set_printoptions(profile="nope")
