// Zero-copy NumPy interop: kiln.from_numpy and Tensor.numpy().
#include <pybind11/numpy.h>

#include "caster.h"
#include "kiln/error.h"
#include "kiln/ops.h"
#include "module.h"

namespace py = pybind11;

namespace kiln::python {

namespace {

ScalarType dtype_from_numpy(const py::dtype& dt) {
  const char kind = dt.kind();
  const auto size = dt.itemsize();
  if (kind == 'b') return ScalarType::Bool;
  if (kind == 'u' && size == 1) return ScalarType::UInt8;
  if (kind == 'i') {
    if (size == 1) return ScalarType::Int8;
    if (size == 2) return ScalarType::Int16;
    if (size == 4) return ScalarType::Int32;
    if (size == 8) return ScalarType::Int64;
  }
  if (kind == 'f') {
    if (size == 2) return ScalarType::Float16;
    if (size == 4) return ScalarType::Float32;
    if (size == 8) return ScalarType::Float64;
  }
  throw TypeError("[from_numpy] can't convert np.ndarray of type " +
                  std::string(py::str(dt)) +
                  ". The only supported types are: float64, float32, float16, int64, int32, "
                  "int16, int8, uint8, and bool.");
}

py::dtype numpy_dtype(ScalarType t) {
  switch (t) {
    case ScalarType::Bool: return py::dtype("bool");
    case ScalarType::UInt8: return py::dtype("uint8");
    case ScalarType::Int8: return py::dtype("int8");
    case ScalarType::Int16: return py::dtype("int16");
    case ScalarType::Int32: return py::dtype("int32");
    case ScalarType::Int64: return py::dtype("int64");
    case ScalarType::Float16: return py::dtype("float16");
    case ScalarType::Float32: return py::dtype("float32");
    case ScalarType::Float64: return py::dtype("float64");
    case ScalarType::BFloat16: break;
  }
  throw TypeError("[numpy] NumPy has no bfloat16 dtype; convert with .float() first");
}

void release_pyobject(void* obj) {
  py::gil_scoped_acquire gil;
  Py_DECREF(static_cast<PyObject*>(obj));
}

}  // namespace

Tensor from_numpy(py::array arr) {
  const ScalarType dtype = dtype_from_numpy(arr.dtype());
  KILN_CHECK(arr.dtype().attr("isnative").cast<bool>(), TypeError,
             "[from_numpy] non-native byte order is not supported");
  const int64_t item = static_cast<int64_t>(itemsize(dtype));
  Shape sizes, strides;
  int64_t max_offset = 0;
  for (py::ssize_t d = 0; d < arr.ndim(); ++d) {
    const int64_t size = arr.shape(d), stride = arr.strides(d);
    KILN_CHECK(stride >= 0, ValueError,
               "[from_numpy] at least one stride in the given numpy array is negative; copy the "
               "array first (np.ascontiguousarray)");
    KILN_CHECK(stride % item == 0, ValueError, "[from_numpy] given numpy array strides not a "
               "multiple of the element byte size; copy the numpy array to reallocate the memory");
    sizes.push_back(size);
    strides.push_back(stride / item);
    if (size > 0) max_offset += (size - 1) * stride;
  }
  const size_t nbytes = arr.size() == 0 ? 0 : static_cast<size_t>(max_offset + item);
  PyObject* owner = arr.ptr();
  Py_INCREF(owner);
  auto storage = Storage::borrow(const_cast<void*>(arr.data()), nbytes, Device(),
                                 &release_pyobject, owner);
  return make_tensor(std::move(storage), sizes, strides, 0, dtype);
}

py::array to_numpy(const Tensor& t) {
  KILN_CHECK(!t.requires_grad(), Error,
             "[numpy] Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() "
             "instead.");
  KILN_CHECK(t.device().is_cpu(), TypeError, "[numpy] can't convert ", t.device(),
             " tensor to numpy. Use Tensor.cpu() to copy the tensor to host memory first.");
  std::vector<py::ssize_t> shape(t.sizes().begin(), t.sizes().end());
  std::vector<py::ssize_t> strides;
  for (int64_t s : t.strides()) strides.push_back(s * static_cast<int64_t>(t.itemsize()));
  // The capsule keeps the storage alive as long as the array.
  auto* keep = new std::shared_ptr<Storage>(t.storage());
  py::capsule owner(keep, [](void* p) { delete static_cast<std::shared_ptr<Storage>*>(p); });
  return py::array(numpy_dtype(t.dtype()), shape, strides, t.data_ptr(), owner);
}

void init_numpy(py::module_& m) {
  m.def("from_numpy", &from_numpy, py::arg("ndarray"),
        "A tensor sharing memory with a NumPy array (no copy).");
  auto cls = py::reinterpret_borrow<py::object>(m.attr("Tensor"));
  py::cpp_function numpy_fn(&to_numpy, py::name("numpy"), py::is_method(cls),
                            py::sibling(py::getattr(cls, "numpy", py::none())),
                            "A NumPy array sharing this tensor's memory (CPU only).");
  cls.attr("numpy") = numpy_fn;
}

}  // namespace kiln::python
