// kiln.dtype and kiln.device, and the conversions declared in caster.h.
#include <array>

#include "caster.h"
#include "kiln/error.h"
#include "module.h"

namespace py = pybind11;

namespace kiln::python {
namespace {
std::array<py::object, kNumScalarTypes>& dtype_objects() {
  static auto* objects = new std::array<py::object, kNumScalarTypes>();  // lives until exit
  return *objects;
}
}  // namespace

py::object dtype_object(ScalarType t) { return dtype_objects()[static_cast<int>(t)]; }

bool is_python_scalar(py::handle h) {
  if (PyBool_Check(h.ptr()) || PyLong_Check(h.ptr()) || PyFloat_Check(h.ptr())) return true;
  // NumPy scalars (np.float32(1), np.int64(2), np.bool_(True)).
  static py::handle np_generic = [] {
    try {
      return py::object(py::module_::import("numpy").attr("generic")).release();
    } catch (...) {
      return py::handle();
    }
  }();
  return np_generic && py::isinstance(h, np_generic) && py::hasattr(h, "item") &&
         (py::isinstance<py::bool_>(h.attr("item")()) || py::isinstance<py::int_>(h.attr("item")()) ||
          py::isinstance<py::float_>(h.attr("item")()));
}

Scalar to_scalar(py::handle h) {
  if (PyBool_Check(h.ptr())) return Scalar(h.ptr() == Py_True);
  if (PyLong_Check(h.ptr())) {
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(h.ptr(), &overflow);
    KILN_CHECK(!overflow, ValueError, "integer ", std::string(py::str(h)),
               " is out of the int64 range");
    return Scalar(static_cast<int64_t>(v));
  }
  if (PyFloat_Check(h.ptr())) return Scalar(PyFloat_AsDouble(h.ptr()));
  return to_scalar(h.attr("item")());
}

void init_types(py::module_& m) {
  py::class_<DType>(m, "dtype", "A tensor element type, like kiln.float32.")
      .def_property_readonly("is_floating_point", [](const DType& d) { return is_floating(d.type); })
      .def_property_readonly("is_signed", [](const DType& d) { return is_signed(d.type); })
      .def_property_readonly("itemsize", [](const DType& d) { return itemsize(d.type); })
      .def("__repr__", [](const DType& d) { return std::string("kiln.") + dtype_name(d.type); })
      .def("__reduce__", [](const DType& d) { return std::string(dtype_name(d.type)); });
  const ScalarType all[] = {ScalarType::Bool,    ScalarType::UInt8,   ScalarType::Int8,
                            ScalarType::Int16,   ScalarType::Int32,   ScalarType::Int64,
                            ScalarType::Float16, ScalarType::BFloat16, ScalarType::Float32,
                            ScalarType::Float64};
  for (ScalarType t : all) {
    py::object o = py::cast(DType{t});
    dtype_objects()[static_cast<int>(t)] = o;
    m.attr(dtype_name(t)) = o;
  }

  py::class_<Device>(m, "device", "Where a tensor lives: kiln.device('cpu'), kiln.device('cuda:0').")
      .def(py::init([](const std::string& spec) { return Device::parse(spec); }), py::arg("type"))
      .def(py::init([](const std::string& type, int index) {
             Device d = Device::parse(type);
             KILN_CHECK(index >= 0 && index < 128, ValueError, "[device] bad index ", index);
             return Device(d.type, index);
           }),
           py::arg("type"), py::arg("index"))
      .def_property_readonly("type", [](const Device& d) { return d.is_cpu() ? "cpu" : "cuda"; })
      .def_property_readonly("index", [](const Device& d) -> py::object {
        if (!d.has_index()) return py::none();
        return py::int_(d.index);
      })
      .def("__eq__", [](const Device& a, const Device& b) { return a == b; })
      .def("__hash__", [](const Device& d) { return static_cast<int>(d.type) * 256 + d.index; })
      .def("__str__", &Device::str)
      .def("__repr__", [](const Device& d) {
        const std::string type = d.is_cpu() ? "cpu" : "cuda";
        if (!d.has_index()) return "device(type='" + type + "')";
        return "device(type='" + type + "', index=" + std::to_string(d.index) + ")";
      });
}

}  // namespace kiln::python

namespace pybind11::detail {

bool type_caster<kiln::ScalarType>::load(handle src, bool) {
  using kiln::ScalarType;
  if (py::isinstance<kiln::python::DType>(src)) {
    value = py::cast<const kiln::python::DType&>(src).type;
    return true;
  }
  if (src.ptr() == reinterpret_cast<PyObject*>(&PyFloat_Type)) {
    value = kiln::default_float_dtype();
    return true;
  }
  if (src.ptr() == reinterpret_cast<PyObject*>(&PyLong_Type)) {
    value = ScalarType::Int64;
    return true;
  }
  if (src.ptr() == reinterpret_cast<PyObject*>(&PyBool_Type)) {
    value = ScalarType::Bool;
    return true;
  }
  return false;
}

bool type_caster<kiln::Device>::load(handle src, bool) {
  if (py::isinstance<py::str>(src)) {
    value = kiln::Device::parse(py::cast<std::string>(src));
    return true;
  }
  type_caster_base<kiln::Device> base;
  if (!base.load(src, false)) return false;
  value = static_cast<kiln::Device&>(base);
  return true;
}

handle type_caster<kiln::Device>::cast(const kiln::Device& d, return_value_policy, handle parent) {
  return type_caster_base<kiln::Device>::cast(d, return_value_policy::copy, parent);
}

}  // namespace pybind11::detail
