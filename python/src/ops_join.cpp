// Bindings for joining and rearranging ops: cat/stack, repeat/tile, flip, roll, tril/triu.
#include <pybind11/stl.h>

#include "args.h"
#include "caster.h"
#include "kiln/error.h"
#include "kiln/ops.h"
#include "module.h"

namespace py = pybind11;

namespace kiln::python {

namespace {

std::string type_name(py::handle h) { return py::str(py::type::of(h).attr("__name__")); }

// A sequence of tensors, with a TypeError naming the op and position otherwise.
TensorList tensor_list(py::handle seq, const char* op) {
  // A Tensor is a sequence too (of its rows), but PyTorch refuses it here.
  const bool is_tensor = py::detail::make_caster<Tensor>().load(seq, false);
  KILN_CHECK(py::isinstance<py::sequence>(seq) && !py::isinstance<py::str>(seq) && !is_tensor,
             TypeError, "[", op, "] expected a sequence of Tensors, got ", type_name(seq));
  TensorList out;
  for (auto h : py::reinterpret_borrow<py::sequence>(seq)) {
    KILN_CHECK(py::detail::make_caster<Tensor>().load(h, false), TypeError, "[", op,
               "] expected a sequence of Tensors, but element ", out.size(), " is ",
               type_name(h));
    out.push_back(py::cast<Tensor>(h));
  }
  return out;
}

// An int or a sequence of ints (dims, shifts).
Shape ints(py::handle h, const char* op, const char* what) {
  auto is_int = [](py::handle x) {
    return py::isinstance<py::int_>(x) && !py::isinstance<py::bool_>(x);
  };
  if (is_int(h)) return {h.cast<int64_t>()};
  KILN_CHECK(py::isinstance<py::sequence>(h), TypeError, "[", op, "] expected an int or a "
             "sequence of ints for ", what, ", got ", type_name(h));
  Shape out;
  for (auto x : py::reinterpret_borrow<py::sequence>(h)) {
    KILN_CHECK(is_int(x), TypeError, "[", op, "] expected ints for ", what, ", got ",
               type_name(x));
    out.push_back(x.cast<int64_t>());
  }
  return out;
}

}  // namespace

void init_ops_join(py::module_& m) {
  auto cls = py::reinterpret_borrow<py::class_<TensorImpl, std::shared_ptr<TensorImpl>>>(
      m.attr("Tensor"));

  for (const char* name : {"cat", "concat", "concatenate"})
    m.def(name, [](py::handle t, int64_t dim) { return cat(tensor_list(t, "cat"), dim); },
          py::arg("tensors"), py::arg("dim") = 0,
          "Concatenates tensors along an existing dim, promoting their dtypes.");
  m.def("stack", [](py::handle t, int64_t dim) { return stack(tensor_list(t, "stack"), dim); },
        py::arg("tensors"), py::arg("dim") = 0, "Joins equal-shape tensors along a new dim.");
  m.def("hstack", [](py::handle t) { return hstack(tensor_list(t, "hstack")); },
        py::arg("tensors"), "Concatenates column-wise (along dim 1, or 0 for 1-d tensors).");
  m.def("vstack", [](py::handle t) { return vstack(tensor_list(t, "vstack")); },
        py::arg("tensors"), "Concatenates row-wise, after making inputs at least 2-d.");

  cls.def("repeat",
          [](const Tensor& t, py::args a) { return repeat(t, shape_from_args(a, "repeat")); },
          "Repeats the tensor along each dim (more sizes than dims add leading dims).");
  cls.def("tile", [](const Tensor& t, py::args a) { return tile(t, shape_from_args(a, "tile")); },
          "repeat() with missing leading sizes taken as 1.");
  m.def("tile",
        [](const Tensor& t, py::handle dims) { return tile(t, ints(dims, "tile", "dims")); },
        py::arg("input"), py::arg("dims"));

  cls.def("flip", [](const Tensor& t, py::args a) {
    KILN_CHECK(!a.empty(), TypeError, "[flip] missing dims");
    return flip(t, shape_from_args(a, "flip"));
  },
          "Reverses the order of elements along the given dims.");
  m.def("flip",
        [](const Tensor& t, py::handle dims) { return flip(t, ints(dims, "flip", "dims")); },
        py::arg("input"), py::arg("dims"));

  auto roll_fn = [](const Tensor& t, py::handle shifts, py::handle dims) {
    return roll(t, ints(shifts, "roll", "shifts"),
                dims.is_none() ? Shape{} : ints(dims, "roll", "dims"));
  };
  cls.def("roll", roll_fn, py::arg("shifts"), py::arg("dims") = py::none(),
          "Shifts elements along dims, wrapping around; without dims, over the flattened tensor.");
  m.def("roll", roll_fn, py::arg("input"), py::arg("shifts"), py::arg("dims") = py::none());

  auto tril_fn = [](const Tensor& t, int64_t k) { return tril(t, k); };
  auto triu_fn = [](const Tensor& t, int64_t k) { return triu(t, k); };
  cls.def("tril", tril_fn, py::arg("diagonal") = 0, "Lower triangle of the last two dims.");
  cls.def("triu", triu_fn, py::arg("diagonal") = 0, "Upper triangle of the last two dims.");
  m.def("tril", tril_fn, py::arg("input"), py::arg("diagonal") = 0);
  m.def("triu", triu_fn, py::arg("input"), py::arg("diagonal") = 0);
  cls.def("tril_", [](Tensor& t, int64_t k) { tril_(t, k); return t; }, py::arg("diagonal") = 0);
  cls.def("triu_", [](Tensor& t, int64_t k) { triu_(t, k); return t; }, py::arg("diagonal") = 0);
}

}  // namespace kiln::python
