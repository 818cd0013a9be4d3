// Bindings for index-driven ops: gather/scatter, index_select/index_add, take_along_dim,
// one_hot, nonzero/argwhere, masked_select.
#include <pybind11/stl.h>

#include "args.h"
#include "caster.h"
#include "kiln/error.h"
#include "kiln/ops.h"
#include "module.h"

namespace py = pybind11;

namespace kiln::python {

namespace {

ScatterReduce reduce_arg(const std::optional<std::string>& reduce) {
  return reduce ? parse_scatter_reduce(*reduce) : ScatterReduce::None;
}

// scatter's fourth argument is `src` (a Tensor) or `value` (a number), positionally or by name.
template <class TensorFn, class ValueFn>
auto scatter_dispatch(const char* op, py::handle src, py::handle value, TensorFn tensor_fn,
                      ValueFn value_fn) {
  KILN_CHECK(src.is_none() != value.is_none(), TypeError, "[", op,
             "] expected exactly one of src (a Tensor) or value (a number)");
  py::handle h = src.is_none() ? value : src;
  if (is_python_scalar(h)) return value_fn(to_scalar(h));
  KILN_CHECK(py::detail::make_caster<Tensor>().load(h, false), TypeError, "[", op,
             "] expected src to be a Tensor or value a number, got ",
             std::string(py::str(py::type::of(h).attr("__name__"))));
  return tensor_fn(py::cast<Tensor>(h));
}

}  // namespace

void init_ops_gather(py::module_& m) {
  auto cls = py::reinterpret_borrow<py::class_<TensorImpl, std::shared_ptr<TensorImpl>>>(
      m.attr("Tensor"));

  auto gather_fn = [](const Tensor& t, int64_t dim, const Tensor& index, bool) {
    return gather(t, dim, index);
  };
  cls.def("gather", gather_fn, py::arg("dim"), py::arg("index"), py::kw_only(),
          py::arg("sparse_grad") = false, "out[i][j] = input[i][index[i][j]] (for dim 1).");
  m.def("gather", gather_fn, py::arg("input"), py::arg("dim"), py::arg("index"), py::kw_only(),
        py::arg("sparse_grad") = false);

  auto scatter_fn = [](const Tensor& t, int64_t dim, const Tensor& index, py::handle src,
                       py::handle value, std::optional<std::string> reduce) {
    const ScatterReduce r = reduce_arg(reduce);
    return scatter_dispatch(
        "scatter", src, value, [&](const Tensor& s) { return scatter(t, dim, index, s, r); },
        [&](Scalar v) { return scatter(t, dim, index, v, r); });
  };
  cls.def("scatter", scatter_fn, py::arg("dim"), py::arg("index"), py::arg("src") = py::none(),
          py::kw_only(), py::arg("value") = py::none(), py::arg("reduce") = py::none(),
          "A copy with src (or value) written at index along dim.");
  m.def("scatter", scatter_fn, py::arg("input"), py::arg("dim"), py::arg("index"),
        py::arg("src") = py::none(), py::kw_only(), py::arg("value") = py::none(),
        py::arg("reduce") = py::none());
  cls.def("scatter_", [](Tensor& t, int64_t dim, const Tensor& index, py::handle src,
                         py::handle value, std::optional<std::string> reduce) {
    const ScatterReduce r = reduce_arg(reduce);
    scatter_dispatch(
        "scatter_", src, value, [&](const Tensor& s) { return scatter_(t, dim, index, s, r); },
        [&](Scalar v) { return scatter_(t, dim, index, v, r); });
    return t;
  }, py::arg("dim"), py::arg("index"), py::arg("src") = py::none(), py::kw_only(),
     py::arg("value") = py::none(), py::arg("reduce") = py::none());

  auto scatter_add_fn = [](const Tensor& t, int64_t dim, const Tensor& index, const Tensor& src) {
    return scatter_add(t, dim, index, src);
  };
  cls.def("scatter_add", scatter_add_fn, py::arg("dim"), py::arg("index"), py::arg("src"),
          "A copy with src summed into the positions index gives along dim.");
  m.def("scatter_add", scatter_add_fn, py::arg("input"), py::arg("dim"), py::arg("index"),
        py::arg("src"));
  cls.def("scatter_add_", [](Tensor& t, int64_t dim, const Tensor& index, const Tensor& src) {
    scatter_add_(t, dim, index, src);
    return t;
  }, py::arg("dim"), py::arg("index"), py::arg("src"));

  auto index_select_fn = [](const Tensor& t, int64_t dim, const Tensor& index) {
    return index_select(t, dim, index);
  };
  cls.def("index_select", index_select_fn, py::arg("dim"), py::arg("index"),
          "The slices at the positions of the 1-d index along dim.");
  m.def("index_select", index_select_fn, py::arg("input"), py::arg("dim"), py::arg("index"));

  auto index_add_fn = [](const Tensor& t, int64_t dim, const Tensor& index, const Tensor& source,
                         Scalar alpha) { return index_add(t, dim, index, source, alpha); };
  cls.def("index_add", index_add_fn, py::arg("dim"), py::arg("index"), py::arg("source"),
          py::kw_only(), py::arg("alpha") = 1,
          "A copy with alpha * source's slices added at the positions of index along dim.");
  m.def("index_add", index_add_fn, py::arg("input"), py::arg("dim"), py::arg("index"),
        py::arg("source"), py::kw_only(), py::arg("alpha") = 1);
  cls.def("index_add_", [](Tensor& t, int64_t dim, const Tensor& index, const Tensor& source,
                           Scalar alpha) {
    index_add_(t, dim, index, source, alpha);
    return t;
  }, py::arg("dim"), py::arg("index"), py::arg("source"), py::kw_only(), py::arg("alpha") = 1);

  auto take_fn = [](const Tensor& t, const Tensor& indices, std::optional<int64_t> dim) {
    return take_along_dim(t, indices, dim);
  };
  cls.def("take_along_dim", take_fn, py::arg("indices"), py::arg("dim") = py::none(),
          "gather() with input and indices broadcast against each other (except along dim).");
  m.def("take_along_dim", take_fn, py::arg("input"), py::arg("indices"),
        py::arg("dim") = py::none());

  m.def("one_hot", [](const Tensor& t, int64_t n) { return one_hot(t, n); }, py::arg("tensor"),
        py::arg("num_classes") = -1,
        "int64 one-hot encoding with a new last dim of num_classes (-1: max value + 1).");

  auto nonzero_fn = [](const Tensor& t, bool as_tuple) -> py::object {
    if (!as_tuple) return py::cast(nonzero(t));
    return py::tuple(py::cast(nonzero_tuple(t)));
  };
  cls.def("nonzero", nonzero_fn, py::kw_only(), py::arg("as_tuple") = false,
          "Coordinates of the nonzero elements: int64 [count, ndim] (or a tuple of columns).");
  m.def("nonzero", nonzero_fn, py::arg("input"), py::kw_only(), py::arg("as_tuple") = false);
  cls.def("argwhere", [](const Tensor& t) { return argwhere(t); });
  m.def("argwhere", [](const Tensor& t) { return argwhere(t); }, py::arg("input"));

  auto masked_select_fn = [](const Tensor& t, const Tensor& mask) {
    return masked_select(t, mask);
  };
  cls.def("masked_select", masked_select_fn, py::arg("mask"),
          "The elements where the (broadcast) bool mask is true, as a 1-d tensor.");
  m.def("masked_select", masked_select_fn, py::arg("input"), py::arg("mask"));
}

}  // namespace kiln::python
