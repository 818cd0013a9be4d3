// Bindings for creation, copy and view ops (arithmetic: ops_elementwise.cpp,
// reductions: ops_reduce.cpp).
#include <pybind11/stl.h>

#include "args.h"
#include "caster.h"
#include "kiln/ops.h"
#include "module.h"

namespace py = pybind11;

namespace kiln::python {

void init_ops_core(py::module_& m) {
  auto cls = py::reinterpret_borrow<py::class_<TensorImpl, std::shared_ptr<TensorImpl>>>(
      m.attr("Tensor"));

  // Creation (Python wrappers in kiln/_creation.py add *size and requires_grad).
  m.def("empty", [](const Shape& s, ScalarType d, Device dev) { return empty(s, d, dev); });
  m.def("zeros", [](const Shape& s, ScalarType d, Device dev) { return zeros(s, d, dev); });
  m.def("ones", [](const Shape& s, ScalarType d, Device dev) { return ones(s, d, dev); });
  m.def("full", [](const Shape& s, Scalar v, ScalarType d, Device dev) { return full(s, v, d, dev); });

  // Views.
  cls.def("view", [](const Tensor& t, py::args a) { return view(t, shape_from_args(a, "view")); });
  cls.def("reshape", [](const Tensor& t, py::args a) { return reshape(t, shape_from_args(a, "reshape")); });
  cls.def("expand", [](const Tensor& t, py::args a) { return expand(t, shape_from_args(a, "expand")); });
  cls.def("permute", [](const Tensor& t, py::args a) { return permute(t, shape_from_args(a, "permute")); });
  cls.def("transpose", [](const Tensor& t, int64_t a, int64_t b) { return transpose(t, a, b); },
          py::arg("dim0"), py::arg("dim1"));
  cls.def("unsqueeze", [](const Tensor& t, int64_t d) { return unsqueeze(t, d); }, py::arg("dim"));
  cls.def("select", [](const Tensor& t, int64_t d, int64_t i) { return select(t, d, i); },
          py::arg("dim"), py::arg("index"));
  cls.def("_slice", [](const Tensor& t, int64_t d, std::optional<int64_t> s, std::optional<int64_t> e,
                       int64_t step) { return slice(t, d, s, e, step); });
  cls.def("as_strided", [](const Tensor& t, const Shape& size, const Shape& stride,
                           std::optional<int64_t> off) { return as_strided(t, size, stride, off); },
          py::arg("size"), py::arg("stride"), py::arg("storage_offset") = py::none());
  m.def("view", [](const Tensor& t, const Shape& s) { return view(t, s); });
  m.def("reshape", [](const Tensor& t, const Shape& s) { return reshape(t, s); }, py::arg("input"), py::arg("shape"));
  m.def("permute", [](const Tensor& t, const Shape& d) { return permute(t, d); }, py::arg("input"), py::arg("dims"));
  m.def("transpose", [](const Tensor& t, int64_t a, int64_t b) { return transpose(t, a, b); },
        py::arg("input"), py::arg("dim0"), py::arg("dim1"));
  m.def("unsqueeze", [](const Tensor& t, int64_t d) { return unsqueeze(t, d); }, py::arg("input"), py::arg("dim"));
  m.def("select", [](const Tensor& t, int64_t d, int64_t i) { return select(t, d, i); },
        py::arg("input"), py::arg("dim"), py::arg("index"));
  m.def("clone", [](const Tensor& t) { return clone(t); }, py::arg("input"));
  m.def("detach", [](const Tensor& t) { return detach(t); }, py::arg("input"));

}

}  // namespace kiln::python
