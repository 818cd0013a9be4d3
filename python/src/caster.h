#pragma once
// pybind11 conversions for kiln's core types:
//   Tensor     <-> kiln.Tensor (one Python object per TensorImpl, so identity holds)
//   ScalarType <-> kiln.dtype singletons (kiln.float32, ...); also accepts float/int/bool
//   Device     <-> kiln.device; also accepts "cpu", "cuda:0"
//   Scalar     <-  Python bool/int/float and NumPy scalars
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "kiln/device.h"
#include "kiln/dtype.h"
#include "kiln/scalar.h"
#include "kiln/tensor.h"

namespace kiln::python {

// The Python face of a dtype; instances are the singletons kiln.float32 etc.
struct DType {
  ScalarType type;
};
// Returns the singleton object for `t` (created by init_dtype).
pybind11::object dtype_object(ScalarType t);
bool is_python_scalar(pybind11::handle h);
Scalar to_scalar(pybind11::handle h);

}  // namespace kiln::python

namespace pybind11::detail {

using TensorHolderCaster =
    copyable_holder_caster<kiln::TensorImpl, std::shared_ptr<kiln::TensorImpl>>;

template <>
struct type_caster<kiln::Tensor> {
  PYBIND11_TYPE_CASTER(kiln::Tensor, const_name("Tensor"));
  bool load(handle src, bool convert) {
    if (src.is_none()) return false;  // the generic caster would give a null tensor
    TensorHolderCaster caster;
    if (!caster.load(src, convert)) return false;
    value = kiln::Tensor(static_cast<std::shared_ptr<kiln::TensorImpl>>(caster));
    return true;
  }
  static handle cast(const kiln::Tensor& t, return_value_policy, handle) {
    if (!t.defined()) return none().release();
    return TensorHolderCaster::cast(t.impl_ptr(), return_value_policy::take_ownership, {});
  }
};

template <>
struct type_caster<kiln::ScalarType> {
  PYBIND11_TYPE_CASTER(kiln::ScalarType, const_name("dtype"));
  bool load(handle src, bool convert);
  static handle cast(kiln::ScalarType t, return_value_policy, handle) {
    return kiln::python::dtype_object(t).release();
  }
};

template <>
struct type_caster<kiln::Device> {
  PYBIND11_TYPE_CASTER(kiln::Device, const_name("device"));
  bool load(handle src, bool convert);
  static handle cast(const kiln::Device& d, return_value_policy policy, handle parent);
};

template <>
struct type_caster<kiln::Scalar> {
  PYBIND11_TYPE_CASTER(kiln::Scalar, const_name("Number"));
  bool load(handle src, bool) {
    if (!kiln::python::is_python_scalar(src)) return false;
    value = kiln::python::to_scalar(src);
    return true;
  }
  static handle cast(const kiln::Scalar& s, return_value_policy, handle) {
    if (s.is_bool()) return pybind11::bool_(s.to<bool>()).release();
    if (s.is_integral()) return pybind11::int_(s.to_int()).release();
    return pybind11::float_(s.to_double()).release();
  }
};

}  // namespace pybind11::detail
