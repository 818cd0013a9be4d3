// Bindings for matrix products: matmul and @, mm, bmm, addmm, baddbmm, linear, outer, dot, einsum.
#include <pybind11/stl.h>

#include "args.h"
#include "caster.h"
#include "kiln/ops.h"
#include "module.h"

namespace py = pybind11;

namespace kiln::python {

namespace {
// Multiply-adds above which the GIL is released (smaller products are overhead-bound).
constexpr double kReleaseGilWork = 1 << 20;

template <class Fn>
Tensor product(const Tensor& a, const Tensor& b, Fn fn) {
  const double work = double(a.numel()) * double(b.dim() >= 2 ? b.size(-1) : 1);
  if (work < kReleaseGilWork) return fn(a, b);
  py::gil_scoped_release no_gil;
  return fn(a, b);
}

Tensor matmul_fn(const Tensor& a, const Tensor& b) { return product(a, b, &matmul); }
Tensor mm_fn(const Tensor& a, const Tensor& b) { return product(a, b, &mm); }
Tensor bmm_fn(const Tensor& a, const Tensor& b) { return product(a, b, &bmm); }

bool is_tensor(py::handle h) { return py::detail::make_caster<Tensor>().load(h, false); }

// einsum(eq, a, b) and einsum(eq, [a, b]) both work, as in PyTorch.
TensorList einsum_operands(const py::args& args) {
  if (args.size() == 1 && !is_tensor(args[0])) return args[0].cast<TensorList>();
  TensorList ops;
  for (auto h : args) {
    if (!is_tensor(h))
      throw py::type_error("[einsum] operands must be Tensors, got " +
                           std::string(py::str(py::type::of(h).attr("__name__"))));
    ops.push_back(h.cast<Tensor>());
  }
  return ops;
}
}  // namespace

void init_ops_linalg(py::module_& m) {
  auto cls = py::reinterpret_borrow<py::class_<TensorImpl, std::shared_ptr<TensorImpl>>>(
      m.attr("Tensor"));

  m.def("matmul", &matmul_fn, py::arg("input"), py::arg("other"),
        "Matrix product with PyTorch's 1-D/2-D/batched rules; batch dims broadcast.");
  cls.def("matmul", &matmul_fn, py::arg("other"));
  cls.def("__matmul__", [](const Tensor& self, py::handle other) -> py::object {
    if (!is_tensor(other)) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
    return py::cast(matmul_fn(self, other.cast<Tensor>()));
  });
  cls.def("__rmatmul__", [](const Tensor& self, py::handle other) -> py::object {
    if (!is_tensor(other)) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
    return py::cast(matmul_fn(other.cast<Tensor>(), self));
  });

  m.def("mm", &mm_fn, py::arg("input"), py::arg("mat2"), "(n, m) @ (m, p) matrix product.");
  cls.def("mm", &mm_fn, py::arg("mat2"));
  m.def("bmm", &bmm_fn, py::arg("input"), py::arg("mat2"),
        "(b, n, m) @ (b, m, p) batched product.");
  cls.def("bmm", &bmm_fn, py::arg("mat2"));

  auto addmm_fn = [](const Tensor& input, const Tensor& a, const Tensor& b, Scalar beta,
                     Scalar alpha) { return addmm(input, a, b, beta, alpha); };
  m.def("addmm", addmm_fn, py::arg("input"), py::arg("mat1"), py::arg("mat2"), py::kw_only(),
        py::arg("beta") = 1, py::arg("alpha") = 1, "beta * input + alpha * (mat1 @ mat2).");
  cls.def("addmm", addmm_fn, py::arg("mat1"), py::arg("mat2"), py::kw_only(),
          py::arg("beta") = 1, py::arg("alpha") = 1);
  auto baddbmm_fn = [](const Tensor& input, const Tensor& a, const Tensor& b, Scalar beta,
                       Scalar alpha) { return baddbmm(input, a, b, beta, alpha); };
  m.def("baddbmm", baddbmm_fn, py::arg("input"), py::arg("batch1"), py::arg("batch2"),
        py::kw_only(), py::arg("beta") = 1, py::arg("alpha") = 1,
        "beta * input + alpha * (batch1 @ batch2), batched.");
  cls.def("baddbmm", baddbmm_fn, py::arg("batch1"), py::arg("batch2"), py::kw_only(),
          py::arg("beta") = 1, py::arg("alpha") = 1);

  m.def("linear", [](const Tensor& input, const Tensor& weight, std::optional<Tensor> bias) {
    return linear(input, weight, bias.value_or(Tensor()));
  }, py::arg("input"), py::arg("weight"), py::arg("bias") = py::none(),
     "input @ weight.T + bias.");

  auto outer_fn = [](const Tensor& a, const Tensor& b) { return outer(a, b); };
  m.def("outer", outer_fn, py::arg("input"), py::arg("vec2"), "Outer product of two 1-D tensors.");
  cls.def("outer", outer_fn, py::arg("vec2"));
  auto dot_fn = [](const Tensor& a, const Tensor& b) { return dot(a, b); };
  m.def("dot", dot_fn, py::arg("input"), py::arg("tensor"), "Dot product of two 1-D tensors.");
  cls.def("dot", dot_fn, py::arg("tensor"));

  m.def("einsum", [](const std::string& equation, const py::args& args) {
    return einsum(equation, einsum_operands(args));
  }, py::arg("equation"), "Einstein summation, e.g. einsum('bij,bjk->bik', a, b).");
}

}  // namespace kiln::python
