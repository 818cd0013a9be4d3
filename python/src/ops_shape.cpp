// Bindings for the shape ops (ops/shape.h) and the module-level forms of views.
#include <pybind11/stl.h>

#include "args.h"
#include "caster.h"
#include "kiln/ops.h"
#include "module.h"

namespace py = pybind11;

namespace kiln::python {

namespace {
// An int or a sequence of ints (dims arguments like movedim's source).
Shape int_or_ints(py::handle h) {
  if (py::isinstance<py::int_>(h)) return {h.cast<int64_t>()};
  return h.cast<Shape>();
}

// split/chunk/unbind return tuples, as in PyTorch.
py::tuple as_tuple(const TensorList& ts) { return py::tuple(py::cast(ts)); }

py::tuple split_any(const Tensor& t, py::handle split_size_or_sections, int64_t dim) {
  if (py::isinstance<py::int_>(split_size_or_sections))
    return as_tuple(split(t, split_size_or_sections.cast<int64_t>(), dim));
  return as_tuple(split_with_sizes(t, split_size_or_sections.cast<Shape>(), dim));
}

Tensor movedim_any(const Tensor& t, py::handle source, py::handle destination) {
  return movedim(t, int_or_ints(source), int_or_ints(destination));
}

Tensor squeeze_any(const Tensor& t, py::handle dim) {
  if (dim.is_none()) return squeeze(t);
  return squeeze(t, int_or_ints(dim));
}
}  // namespace

void init_ops_shape(py::module_& m) {
  auto cls = py::reinterpret_borrow<py::class_<TensorImpl, std::shared_ptr<TensorImpl>>>(
      m.attr("Tensor"));
  // Defines `name` both as a Tensor method and as kiln.name(input, ...).
  auto both = [&](const char* name, auto fn, auto... args) {
    cls.def(name, fn, args...);
    m.def(name, fn, py::arg("input"), args...);
  };

  both("flatten", [](const Tensor& t, int64_t s, int64_t e) { return flatten(t, s, e); },
       py::arg("start_dim") = 0, py::arg("end_dim") = -1,
       "Merges dims start_dim..end_dim into one (a view when the layout allows).");
  both("unflatten", [](const Tensor& t, int64_t d, const Shape& s) { return unflatten(t, d, s); },
       py::arg("dim"), py::arg("sizes"), "Splits dim `dim` into `sizes` (one may be -1).");
  both("narrow",
       [](const Tensor& t, int64_t d, int64_t s, int64_t n) { return narrow(t, d, s, n); },
       py::arg("dim"), py::arg("start"), py::arg("length"),
       "The view of elements start..start+length of `dim`.");
  // The method calls it split_size, the function split_size_or_sections (as in PyTorch).
  const char* split_doc = "Views of pieces of split_size (an int) or of the given sizes along dim.";
  cls.def("split", &split_any, py::arg("split_size"), py::arg("dim") = 0, split_doc);
  m.def("split", &split_any, py::arg("tensor"), py::arg("split_size_or_sections"),
        py::arg("dim") = 0, split_doc);
  both("split_with_sizes", [](const Tensor& t, const Shape& s, int64_t d) {
    return as_tuple(split_with_sizes(t, s, d));
  }, py::arg("split_sizes"), py::arg("dim") = 0);
  both("chunk", [](const Tensor& t, int64_t c, int64_t d) { return as_tuple(chunk(t, c, d)); },
       py::arg("chunks"), py::arg("dim") = 0, "At most `chunks` views of equal size along dim.");
  both("unbind", [](const Tensor& t, int64_t d) { return as_tuple(unbind(t, d)); },
       py::arg("dim") = 0, "The slices along dim as a tuple of views, dim removed.");
  both("t", [](const Tensor& x) { return t(x); }, "Transpose of a tensor of at most 2 dims.");
  both("squeeze", &squeeze_any, py::arg("dim") = py::none(),
       "Drops size-1 dims (all, or those of `dim`, an int or a tuple).");
  both("movedim", &movedim_any, py::arg("source"), py::arg("destination"),
       "Moves dims `source` to positions `destination`; the others keep their order.");
  both("moveaxis", &movedim_any, py::arg("source"), py::arg("destination"), "Alias of movedim.");
  both("swapaxes", [](const Tensor& t, int64_t a, int64_t b) { return transpose(t, a, b); },
       py::arg("axis0"), py::arg("axis1"), "Alias of transpose.");
  both("swapdims", [](const Tensor& t, int64_t a, int64_t b) { return transpose(t, a, b); },
       py::arg("dim0"), py::arg("dim1"), "Alias of transpose.");
  cls.def("expand_as", [](const Tensor& t, const Tensor& o) { return expand(t, o.sizes()); },
          py::arg("other"));
  cls.def("view_as", [](const Tensor& t, const Tensor& o) { return view(t, o.sizes()); },
          py::arg("other"));
  cls.def("reshape_as", [](const Tensor& t, const Tensor& o) { return reshape(t, o.sizes()); },
          py::arg("other"));
  cls.def_property_readonly("T", [](const Tensor& t) { return reverse_dims(t); },
                            "The tensor with all dims reversed.");
  cls.def_property_readonly("mT", [](const Tensor& t) { return matrix_transpose(t); },
                            "The tensor with its last two dims swapped.");
}

}  // namespace kiln::python
