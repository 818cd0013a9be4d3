"""Extension ops built by kiln.utils.cpp_extension.load_inline behave like built-in ops:
values, gradients, argument checking, use in a Module trained by an optimizer."""

import pathlib
import re

import kiln
import numpy as np
import pytest
from kiln import nn
from kiln.utils import cpp_extension

torch = pytest.importorskip("torch")

SOURCE = r"""
#include <cmath>
using kiln::Tensor;

// y = alpha * x * sigmoid(x) in one pass (a raw loop: kiln cannot differentiate it).
Tensor scaled_silu(const Tensor& x, double alpha) {
  KILN_CHECK(x.is_floating_point(), TypeError,
             "[ext_ops::scaled_silu] expected a floating point tensor, got ", x.dtype());
  Tensor xc = kiln::contiguous(x);
  Tensor y = kiln::empty(xc.sizes(), xc.dtype(), xc.device());
  kiln::visit_dtype(xc.dtype(), [&]<class T>(kiln::TypeTag<T>) {
    if constexpr (std::is_floating_point_v<T>) {
      const T* a = xc.data<T>();
      T* b = y.data<T>();
      for (int64_t i = 0; i < xc.numel(); ++i) b[i] = T(alpha) * a[i] / (1 + std::exp(-a[i]));
    }
  });
  return y;
}

// No backward registered: differentiating through it must fail clearly.
Tensor opaque_double(const Tensor& x) {
  Tensor y = kiln::empty(x.sizes(), kiln::ScalarType::Float64);
  Tensor xc = kiln::contiguous(kiln::to_dtype(kiln::detach(x), kiln::ScalarType::Float64));
  for (int64_t i = 0; i < x.numel(); ++i) y.data<double>()[i] = 2 * xc.data<double>()[i];
  return y;
}

// Made of kiln ops: differentiable without a formula.
Tensor composite(const Tensor& a, const Tensor& b) { return kiln::mul(a, b) + 1.0; }

// Every argument and return kind a library op supports.
std::tuple<Tensor, double, int64_t> kinds(const Tensor& x, std::optional<Tensor> y,
                                          kiln::TensorList zs, double f, int64_t i, bool flag,
                                          std::vector<int64_t> dims, std::string s) {
  Tensor out = kiln::sum(x, dims, false);
  if (y) out = out + *y;
  for (const auto& z : zs) out = out + z;
  return {flag ? out : -out, f * 2, i + static_cast<int64_t>(s.size())};
}

KILN_LIBRARY(ext_ops, m) {
  m.def("scaled_silu", scaled_silu).backward([](const kiln::BackwardContext& c) -> kiln::TensorList {
    const Tensor& x = c.input(0);
    Tensor s = kiln::sigmoid(x);
    return {c.grad() * c.arg<double>(1) * s * (x * (1 - s) + 1), {}};
  });
  m.def("opaque_double", opaque_double);
  m.def("kinds", kinds);
  m.def("negate", [](const Tensor& x) { return -x; });
}
"""


@pytest.fixture(scope="module")
def ext(tmp_path_factory):
    return cpp_extension.load_inline(
        "ext_ops", SOURCE, functions=["composite"],
        build_directory=str(tmp_path_factory.mktemp("ext_ops")))


def reference_scaled_silu(x, alpha):
    return alpha * torch.nn.functional.silu(x)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_values_and_gradients_match_torch(ext, dtype):
    np_x = np.random.randn(3, 5).astype(dtype)
    x = kiln.tensor(np_x, requires_grad=True)
    y = ext.scaled_silu(x, 1.5)
    tx = torch.tensor(np_x, requires_grad=True)
    ty = reference_scaled_silu(tx, 1.5)
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=tol, atol=tol)
    assert y.dtype == x.dtype and y.grad_fn is not None
    g = np.random.randn(3, 5).astype(dtype)
    y.backward(kiln.tensor(g))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=tol * 10, atol=tol * 10)


def test_same_op_through_kiln_ops_namespace(ext):
    assert ext.scaled_silu is kiln.ops.ext_ops.scaled_silu
    assert kiln.ops.ext_ops.scaled_silu.schema == "(Tensor, float) -> Tensor"
    assert "scaled_silu" in dir(kiln.ops.ext_ops)
    x = kiln.randn(4)
    np.testing.assert_allclose(kiln.ops.ext_ops.scaled_silu(x, 2).numpy(),
                               ext.scaled_silu(x, 2.0).numpy())


def test_gradcheck_and_gradgradcheck(ext):
    x = kiln.randn(4, 3, dtype=kiln.float64, requires_grad=True)
    assert kiln.autograd.gradcheck(lambda t: ext.scaled_silu(t, 0.7), (x,))
    # The backward formula is made of kiln ops, so it is itself differentiable.
    assert kiln.autograd.gradgradcheck(lambda t: ext.scaled_silu(t, 0.7), (x,))


def test_non_contiguous_input(ext):
    x = kiln.randn(4, 6, dtype=kiln.float64)
    xt = x.t()
    expected = reference_scaled_silu(torch.tensor(xt.numpy()), 2.0).numpy()
    np.testing.assert_allclose(ext.scaled_silu(xt, 2.0).numpy(), expected, rtol=1e-12)


def test_generated_binding_for_functions(ext):
    a = kiln.randn(3, dtype=kiln.float64, requires_grad=True)
    b = kiln.randn(3, dtype=kiln.float64, requires_grad=True)
    assert kiln.autograd.gradcheck(ext.composite, (a, b))
    np.testing.assert_allclose(ext.composite(a, b).detach().numpy(),
                               a.detach().numpy() * b.detach().numpy() + 1)


def test_lambda_kernel(ext):
    np.testing.assert_allclose(ext.negate(kiln.ones(2)).numpy(), [-1.0, -1.0])


def test_argument_and_return_kinds(ext):
    x = kiln.ones(2, 3)
    out, f, i = ext.kinds(x, None, [kiln.ones(2)], 1.25, 4, True, [1], "abc")
    np.testing.assert_allclose(out.numpy(), [4.0, 4.0])
    assert (f, i) == (2.5, 7)
    out, _, _ = ext.kinds(x, kiln.ones(2), [], 1, 0, False, (0, 1), "")
    np.testing.assert_allclose(out.numpy(), [-7.0, -7.0])


def test_bad_arguments_name_the_op(ext):
    x = kiln.randn(3)
    with pytest.raises(TypeError, match=r"\[ext_ops::scaled_silu\] expected 2 argument\(s\) "
                                        r"\(Tensor, float\) -> Tensor, got 1"):
        ext.scaled_silu(x)
    with pytest.raises(TypeError, match=r"\[ext_ops::scaled_silu\] argument 1 must be float, "
                                        r"got str"):
        ext.scaled_silu(x, "2")
    with pytest.raises(TypeError, match=r"\[ext_ops::scaled_silu\] argument 0 must be Tensor"):
        ext.scaled_silu(np.ones(3), 2.0)
    with pytest.raises(TypeError, match=r"\[ext_ops::scaled_silu\] takes positional arguments"):
        ext.scaled_silu(x, alpha=2.0)
    with pytest.raises(TypeError, match=r"\[ext_ops::kinds\] argument 6 must be list\[int\]"):
        ext.kinds(x, None, [], 1.0, 1, True, [1.5], "")
    with pytest.raises(TypeError, match=r"argument 4 must be int, got bool"):
        ext.kinds(x, None, [], 1.0, True, True, [0], "")
    # A check inside the kernel raises the matching Python exception.
    with pytest.raises(TypeError, match=r"\[ext_ops::scaled_silu\] expected a floating point"):
        ext.scaled_silu(kiln.arange(3), 2.0)
    with pytest.raises(AttributeError, match=r"kiln.ops.ext_ops has no op 'nope' "
                                             r"\(registered: .*scaled_silu"):
        _ = kiln.ops.ext_ops.nope


def test_op_without_backward_fails_at_backward(ext):
    x = kiln.randn(3, requires_grad=True)
    y = ext.opaque_double(x)  # the forward works (e.g. evaluation without no_grad)
    np.testing.assert_allclose(y.detach().numpy(), 2 * x.detach().numpy().astype("float64"))
    with pytest.raises(NotImplementedError, match=r"\[ext_ops::opaque_double\] has no backward"):
        y.sum().backward()
    with kiln.no_grad():
        assert not ext.opaque_double(x).requires_grad


def test_in_place_change_of_saved_input_is_caught(ext):
    x = kiln.randn(3, requires_grad=True)
    h = x * 1.0
    y = ext.scaled_silu(h, 1.0)
    with kiln.no_grad():
        h.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


class SiluMLP(nn.Module):
    def __init__(self, op):
        super().__init__()
        self.fc1, self.fc2, self.op = nn.Linear(4, 8), nn.Linear(8, 1), op

    def forward(self, x):
        return self.fc2(self.op(self.fc1(x), 1.0))


def test_module_trained_by_optimizer_matches_builtin_silu(ext):
    kiln.manual_seed(0)
    custom = SiluMLP(ext.scaled_silu)
    reference = SiluMLP(lambda t, a: a * nn.functional.silu(t))
    reference.load_state_dict(custom.state_dict())
    x, y = kiln.randn(32, 4), kiln.randn(32, 1)
    losses = []
    for model in (custom, reference):
        opt = kiln.optim.Adam(model.parameters(), lr=1e-2)
        run = []
        for _ in range(20):
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            run.append(loss.item())
        losses.append(run)
    assert losses[0][-1] < losses[0][0]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4)
    for (name, p), q in zip(custom.named_parameters(), reference.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=name)


def test_readme_load_inline_walkthrough(tmp_path, monkeypatch):
    readme = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", readme, re.DOTALL) if "load_inline" in b]
    monkeypatch.setenv("KILN_EXTENSIONS_DIR", str(tmp_path))
    scope = {}
    exec(compile(block, "README.md", "exec"), scope)  # noqa: S102
    x = scope["x"]
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.detach().numpy(), rtol=1e-6)
    assert scope["ext"].square is kiln.ops.my_ops.square
