#pragma once
// Argument helpers shared by the binding files.
#include <optional>

#include "caster.h"
#include "kiln/ops/creation.h"

namespace kiln::python {

// `x.view(2, 3)` and `x.view((2, 3))` both give {2, 3}.
inline Shape shape_from_args(const pybind11::args& args, const char* op) {
  Shape shape;
  if (args.size() == 1 && !pybind11::isinstance<pybind11::int_>(args[0])) {
    for (auto h : pybind11::iter(args[0])) shape.push_back(pybind11::cast<int64_t>(h));
    return shape;
  }
  for (auto h : args) {
    if (!pybind11::isinstance<pybind11::int_>(h) || pybind11::isinstance<pybind11::bool_>(h))
      throw pybind11::type_error(std::string("[") + op + "] expected ints for the shape, got " +
                                 std::string(pybind11::str(pybind11::type::of(h))));
    shape.push_back(pybind11::cast<int64_t>(h));
  }
  return shape;
}

// A Tensor operand from a Tensor or a Python number (wrapped for type promotion).
inline Tensor tensor_or_scalar(pybind11::handle h, Device device, const char* op) {
  if (is_python_scalar(h)) return wrapped_scalar(to_scalar(h), device);
  try {
    return pybind11::cast<Tensor>(h);
  } catch (const pybind11::cast_error&) {
    throw pybind11::type_error(std::string("[") + op + "] expected a Tensor or a number, got " +
                               std::string(pybind11::str(pybind11::type::of(h).attr("__name__"))));
  }
}

inline bool is_tensor_or_scalar(pybind11::handle h) {
  return is_python_scalar(h) || pybind11::detail::make_caster<Tensor>().load(h, false);
}

}  // namespace kiln::python
