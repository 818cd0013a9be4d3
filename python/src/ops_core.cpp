// Bindings for creation, copy, view and core arithmetic.
#include <pybind11/stl.h>

#include "args.h"
#include "caster.h"
#include "kiln/ops.h"
#include "module.h"

namespace py = pybind11;

namespace kiln::python {

namespace {
// Binds `name` and its reflected and in-place dunders for a binary op.
template <class Fn, class InplaceFn>
void def_binary(py::class_<TensorImpl, std::shared_ptr<TensorImpl>>& cls, py::module_& m,
                const char* name, const char* dunder, const char* rdunder, const char* idunder,
                Fn fn, InplaceFn inplace_fn) {
  m.def(name, [fn, name](py::handle a, py::handle b) {
    Tensor x = tensor_or_scalar(a, Device(), name);
    return fn(x, tensor_or_scalar(b, x.device(), name));
  }, py::arg("input"), py::arg("other"));
  cls.def(name, [fn, name](const Tensor& self, py::handle other) {
    return fn(self, tensor_or_scalar(other, self.device(), name));
  }, py::arg("other"));
  cls.def(dunder, [fn, name](const Tensor& self, py::handle other) -> py::object {
    if (!is_tensor_or_scalar(other)) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
    return py::cast(fn(self, tensor_or_scalar(other, self.device(), name)));
  });
  cls.def(rdunder, [fn, name](const Tensor& self, py::handle other) -> py::object {
    if (!is_tensor_or_scalar(other)) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
    return py::cast(fn(tensor_or_scalar(other, self.device(), name), self));
  });
  auto ip = [inplace_fn, name](Tensor& self, py::handle other) -> Tensor {
    Tensor o = tensor_or_scalar(other, self.device(), name);
    inplace_fn(self, o);
    return self;
  };
  cls.def(idunder, ip);
  cls.def((std::string(name) + "_").c_str(), ip, py::arg("other"));
}
}  // namespace

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

  // Arithmetic.
  def_binary(cls, m, "add", "__add__", "__radd__", "__iadd__",
             [](const Tensor& a, const Tensor& b) { return add(a, b); },
             [](Tensor& a, const Tensor& b) { add_(a, b); });
  def_binary(cls, m, "sub", "__sub__", "__rsub__", "__isub__",
             [](const Tensor& a, const Tensor& b) { return sub(a, b); },
             [](Tensor& a, const Tensor& b) { sub_(a, b); });
  def_binary(cls, m, "mul", "__mul__", "__rmul__", "__imul__",
             [](const Tensor& a, const Tensor& b) { return mul(a, b); },
             [](Tensor& a, const Tensor& b) { mul_(a, b); });
  def_binary(cls, m, "div", "__truediv__", "__rtruediv__", "__itruediv__",
             [](const Tensor& a, const Tensor& b) { return div(a, b); },
             [](Tensor& a, const Tensor& b) { div_(a, b); });
  // Comparisons: operators return NotImplemented for foreign types so Python can fall back.
  struct Cmp {
    const char* name;
    const char* dunder;
    Tensor (*fn)(const Tensor&, const Tensor&);
  };
  for (const Cmp& c : {Cmp{"eq", "__eq__", &eq}, Cmp{"ne", "__ne__", &ne}, Cmp{"lt", "__lt__", &lt},
                       Cmp{"le", "__le__", &le}, Cmp{"gt", "__gt__", &gt}, Cmp{"ge", "__ge__", &ge}}) {
    auto fn = c.fn;
    const char* name = c.name;
    m.def(name, [fn, name](py::handle a, py::handle b) {
      Tensor x = tensor_or_scalar(a, Device(), name);
      return fn(x, tensor_or_scalar(b, x.device(), name));
    }, py::arg("input"), py::arg("other"));
    cls.def(name, [fn, name](const Tensor& self, py::handle o) {
      return fn(self, tensor_or_scalar(o, self.device(), name));
    }, py::arg("other"));
    cls.def(c.dunder, [fn, name](const Tensor& self, py::handle o) -> py::object {
      if (!is_tensor_or_scalar(o)) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
      return py::cast(fn(self, tensor_or_scalar(o, self.device(), name)));
    });
  }
  auto where_fn = [](const Tensor& c, py::handle a, py::handle b) {
    return where(c, tensor_or_scalar(a, c.device(), "where"), tensor_or_scalar(b, c.device(), "where"));
  };
  m.def("where", where_fn, py::arg("condition"), py::arg("input"), py::arg("other"));
  cls.def("where", [](const Tensor& self, const Tensor& c, py::handle o) {
    return where(c, self, tensor_or_scalar(o, self.device(), "where"));
  }, py::arg("condition"), py::arg("other"));

  cls.def("__neg__", [](const Tensor& t) { return neg(t); });
  cls.def("neg", [](const Tensor& t) { return neg(t); });
  m.def("neg", [](const Tensor& t) { return neg(t); }, py::arg("input"));
  cls.def("exp", [](const Tensor& t) { return exp(t); });
  m.def("exp", [](const Tensor& t) { return exp(t); }, py::arg("input"));
  cls.def("isfinite", [](const Tensor& t) { return isfinite(t); });
  m.def("isfinite", [](const Tensor& t) { return isfinite(t); }, py::arg("input"));
}

}  // namespace kiln::python
