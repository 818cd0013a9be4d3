// Library ops (KILN_LIBRARY) from Python: kiln.ops.<ns>.<op>(...). Arguments are
// converted by the op's schema, so extensions need neither Python nor pybind11.
#include <pybind11/stl.h>

#include "caster.h"
#include "kiln/library.h"
#include "module.h"

namespace py = pybind11;

namespace kiln::python {

namespace {

using library::ArgType;
using library::Value;

[[noreturn]] void bad_arg(const library::OpDef& op, size_t i, ArgType t, py::handle h) {
  throw py::type_error("[" + op.qualified_name + "] argument " + std::to_string(i) + " must be " +
                       library::type_name(t) + ", got " +
                       py::str(py::type::of(h).attr("__name__")).cast<std::string>());
}

bool is_int(py::handle h) { return py::isinstance<py::int_>(h) && !py::isinstance<py::bool_>(h); }

Value to_value(const library::OpDef& op, size_t i, ArgType t, py::handle h) {
  auto tensor = [&](py::handle x) {
    py::detail::make_caster<Tensor> c;
    if (!c.load(x, false)) bad_arg(op, i, t, x);
    return py::detail::cast_op<Tensor>(c);
  };
  switch (t) {
    case ArgType::Tensor: return tensor(h);
    case ArgType::OptionalTensor: return h.is_none() ? Value() : Value(tensor(h));
    case ArgType::TensorList: {
      if (!py::isinstance<py::sequence>(h)) bad_arg(op, i, t, h);
      TensorList l;
      for (auto x : h) l.push_back(tensor(x));
      return l;
    }
    case ArgType::Float:
      if (!is_int(h) && !py::isinstance<py::float_>(h)) bad_arg(op, i, t, h);
      return h.cast<double>();
    case ArgType::Int:
      if (!is_int(h)) bad_arg(op, i, t, h);
      return h.cast<int64_t>();
    case ArgType::Bool:
      if (!py::isinstance<py::bool_>(h)) bad_arg(op, i, t, h);
      return h.cast<bool>();
    case ArgType::IntList: {
      if (!py::isinstance<py::sequence>(h) || py::isinstance<py::str>(h)) bad_arg(op, i, t, h);
      std::vector<int64_t> l;
      for (auto x : h) {
        if (!is_int(x)) bad_arg(op, i, t, h);
        l.push_back(x.cast<int64_t>());
      }
      return l;
    }
    case ArgType::String:
      if (!py::isinstance<py::str>(h)) bad_arg(op, i, t, h);
      return h.cast<std::string>();
  }
  bad_arg(op, i, t, h);
}

py::object from_value(Value&& v) {
  return std::visit(
      [](auto&& x) -> py::object {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::monostate>) return py::none();
        else return py::cast(std::move(x));
      },
      std::move(v));
}

// The Python face of one op; holds the definition, which outlives it.
struct PyLibraryOp {
  const library::OpDef* op;

  py::object call(py::args args, py::kwargs kwargs) const {
    const auto& types = op->schema.args;
    if (kwargs && !kwargs.empty())
      throw py::type_error("[" + op->qualified_name +
                           "] takes positional arguments only (library ops have no argument "
                           "names)");
    if (args.size() != types.size())
      throw py::type_error("[" + op->qualified_name + "] expected " +
                           std::to_string(types.size()) + " argument(s) " + schema() + ", got " +
                           std::to_string(args.size()));
    std::vector<Value> values;
    values.reserve(args.size());
    for (size_t i = 0; i < args.size(); ++i) values.push_back(to_value(*op, i, types[i], args[i]));
    std::vector<Value> out;
    {
      py::gil_scoped_release no_gil;
      out = library::call(*op, std::move(values));
    }
    if (!op->schema.returns_tuple) return out.empty() ? py::none() : from_value(std::move(out[0]));
    py::tuple t(out.size());
    for (size_t i = 0; i < out.size(); ++i) t[i] = from_value(std::move(out[i]));
    return t;
  }

  std::string schema() const { return library::to_string(op->schema); }
};

}  // namespace

void init_library(py::module_& m) {
  py::class_<PyLibraryOp>(m, "_LibraryOp")
      .def("__call__", &PyLibraryOp::call)
      .def_property_readonly("name",
                             [](const PyLibraryOp& o) {
                               const auto& q = o.op->qualified_name;
                               return q.substr(q.find("::") + 2);
                             })
      .def_property_readonly("qualified_name",
                             [](const PyLibraryOp& o) { return o.op->qualified_name; })
      .def_property_readonly("schema", &PyLibraryOp::schema)
      .def_property_readonly("has_backward",
                             [](const PyLibraryOp& o) { return bool(o.op->backward); })
      .def("__repr__", [](const PyLibraryOp& o) {
        return "<kiln op " + o.op->qualified_name + o.schema() + ">";
      });
  m.def(
      "_library_op",
      [](const std::string& qualified_name) -> py::object {
        const library::OpDef* op = library::find_op(qualified_name);
        if (!op) return py::none();
        return py::cast(PyLibraryOp{op});
      },
      "The op registered as 'ns::op' by KILN_LIBRARY, or None.");
  m.def("_library_definitions", &library::definitions,
        "Qualified names of every op definition so far, in order.");
}

}  // namespace kiln::python
