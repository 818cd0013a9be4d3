// Tensor.__getitem__ / __setitem__ / __iter__ and index_put(_): parses Python
// keys into kiln::TensorIndex lists for ops/indexing.h.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cstring>

#include "args.h"
#include "caster.h"
#include "kiln/error.h"
#include "kiln/ops.h"
#include "module.h"

namespace py = pybind11;

namespace kiln::python {

namespace {

bool is_tensor(py::handle h) { return py::detail::make_caster<Tensor>().load(h, false); }

// An index tensor from a list/tuple/ndarray: bool stays bool, integers become
// int64, an empty sequence is an (empty) int64 index.
Tensor sequence_to_index(py::handle seq) {
  static py::handle np = py::module_::import("numpy").release();  // lives until exit
  py::array arr = np.attr("asarray")(seq);
  const char kind = arr.dtype().kind();
  const bool is_bool = kind == 'b';
  if (!is_bool) {
    KILN_CHECK(kind == 'i' || kind == 'u' || arr.size() == 0, IndexError,
               "[getitem] tensors used as indices must be long, int, byte or bool tensors");
  }
  py::array c = np.attr("ascontiguousarray")(arr, is_bool ? "bool" : "int64");
  Tensor t = empty(Shape(c.shape(), c.shape() + c.ndim()),
                   is_bool ? ScalarType::Bool : ScalarType::Int64);
  std::memcpy(t.data_ptr(), c.data(), c.nbytes());
  return t;
}

// A Python int index; beyond int64 it is out of bounds for any tensor.
int64_t index_int(py::handle h) {
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(h.ptr(), &overflow);
  KILN_CHECK(!overflow, IndexError, "[getitem] index ", std::string(py::str(h)),
             " is out of the int64 range");
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  return v;
}

TensorIndex to_index(py::handle h) {
  if (h.is_none()) return TensorIndex::none();
  if (h.ptr() == Py_Ellipsis) return TensorIndex::ellipsis();
  if (PyBool_Check(h.ptr())) return TensorIndex::boolean(h.ptr() == Py_True);
  if (PyLong_Check(h.ptr())) return TensorIndex::integer(index_int(h));
  if (PySlice_Check(h.ptr())) {
    Py_ssize_t start, stop, step;
    if (PySlice_Unpack(h.ptr(), &start, &stop, &step) < 0) throw py::error_already_set();
    auto* s = reinterpret_cast<PySliceObject*>(h.ptr());
    auto bound = [](PyObject* o, Py_ssize_t v) {
      return o == Py_None ? std::nullopt : std::optional<int64_t>(v);
    };
    return TensorIndex::slice(bound(s->start, start), bound(s->stop, stop), step);
  }
  if (is_tensor(h)) return TensorIndex::tensor(h.cast<Tensor>());
  if (PyList_Check(h.ptr()) || PyTuple_Check(h.ptr()) || py::isinstance<py::array>(h))
    return TensorIndex::tensor(sequence_to_index(h));
  // NumPy scalars and other objects with __index__.
  if (is_python_scalar(h) && py::hasattr(h, "item") && py::isinstance<py::bool_>(h.attr("item")()))
    return TensorIndex::boolean(h.attr("item")().cast<bool>());
  if (PyIndex_Check(h.ptr())) {
    py::object i = py::reinterpret_steal<py::object>(PyNumber_Index(h.ptr()));
    if (!i) throw py::error_already_set();
    return TensorIndex::integer(index_int(i));
  }
  const std::string message =
      "[getitem] only integers, slices (`:`), ellipsis (`...`), None and long or byte tensors "
      "are valid indices (got " +
      std::string(py::str(py::type::of(h).attr("__name__"))) + ")";
  // As in PyTorch: a number of the wrong kind is an IndexError, anything else a TypeError.
  if (PyFloat_Check(h.ptr())) throw py::index_error(message);
  throw py::type_error(message);
}

TensorIndices to_indices(py::handle key) {
  TensorIndices out;
  if (PyTuple_Check(key.ptr())) {
    for (auto h : key) out.push_back(to_index(h));
  } else {
    out.push_back(to_index(key));
  }
  return out;
}

// `t[key] = value`: a Python number becomes a 0-dim tensor of t's dtype.
Tensor to_value(const Tensor& self, py::handle value) {
  if (is_python_scalar(value)) return scalar_tensor(to_scalar(value), self.dtype(), self.device());
  if (is_tensor(value)) return value.cast<Tensor>();
  throw py::type_error("[setitem] can't assign a " +
                       std::string(py::str(py::type::of(value).attr("__name__"))) +
                       " to a kiln.Tensor");
}

// index_put(_)'s `indices`: a tuple/list of tensors, None for a whole dim.
TensorList to_tensor_list(py::handle indices) {
  TensorList out;
  for (auto h : indices) {
    if (h.is_none()) out.emplace_back();
    else if (is_tensor(h)) out.push_back(h.cast<Tensor>());
    else out.push_back(sequence_to_index(h));
  }
  return out;
}

}  // namespace

void init_indexing(py::module_& m) {
  auto cls = py::reinterpret_borrow<py::class_<TensorImpl, std::shared_ptr<TensorImpl>>>(
      m.attr("Tensor"));
  cls.def("__getitem__", [](const Tensor& self, py::handle key) {
    // The common single-int and single-slice keys skip building an index list.
    if (PyLong_Check(key.ptr()) && !PyBool_Check(key.ptr()) && self.dim() > 0)
      return select(self, 0, index_int(key));
    return getitem(self, to_indices(key));
  }, "self[key]: ints, slices, None and ... give views; integer/bool tensors and lists copy.");
  cls.def("__setitem__", [](Tensor& self, py::handle key, py::handle value) {
    setitem_(self, to_indices(key), to_value(self, value));
  }, "self[key] = value (a tensor broadcast to the indexed shape, or a number).");
  cls.def("__iter__", [](const Tensor& self) {
    if (self.dim() == 0) throw py::type_error("[iter] iteration over a 0-d tensor");
    return py::iter(py::cast(unbind(self, 0)));
  });
  auto put_ = [](Tensor& self, py::handle indices, const Tensor& values, bool accumulate) {
    return index_put_(self, to_tensor_list(indices), values, accumulate);
  };
  auto put = [](const Tensor& self, py::handle indices, const Tensor& values, bool accumulate) {
    return index_put(self, to_tensor_list(indices), values, accumulate);
  };
  cls.def("index_put_", put_, py::arg("indices"), py::arg("values"), py::arg("accumulate") = false,
          "self[indices] = values (or += with accumulate) for a tuple of index tensors.");
  cls.def("index_put", put, py::arg("indices"), py::arg("values"), py::arg("accumulate") = false);
  m.def("index_put", put, py::arg("input"), py::arg("indices"), py::arg("values"),
        py::arg("accumulate") = false);
  m.def("index_put_", put_, py::arg("input"), py::arg("indices"), py::arg("values"),
        py::arg("accumulate") = false);
}

}  // namespace kiln::python
