// sort, argsort, topk, unique. sort and topk return named tuples
// (kiln.return_types.sort / .topk) like torch.return_types.
#include <pybind11/stl.h>

#include "caster.h"
#include "kiln/ops/sort.h"
#include "module.h"

namespace py = pybind11;

namespace kiln::python {

namespace {
// A namedtuple type `name(values, indices)` that reports module kiln.return_types.
py::object values_indices_type(const char* name) {
  py::object t = py::module_::import("collections").attr("namedtuple")(
      name, py::make_tuple("values", "indices"));
  t.attr("__module__") = "kiln.return_types";
  return t;
}
}  // namespace

void init_sort(py::module_& m) {
  auto cls = py::reinterpret_borrow<py::class_<TensorImpl, std::shared_ptr<TensorImpl>>>(
      m.attr("Tensor"));
  py::object sort_t = values_indices_type("sort");
  py::object topk_t = values_indices_type("topk");
  m.attr("_return_type_sort") = sort_t;
  m.attr("_return_type_topk") = topk_t;

  auto sort_fn = [sort_t](const Tensor& t, int64_t dim, bool descending, bool stable) {
    auto [values, indices] = sort(t, dim, descending, stable);
    return sort_t(values, indices);
  };
  m.def("sort", sort_fn, py::arg("input"), py::arg("dim") = -1, py::arg("descending") = false,
        py::kw_only(), py::arg("stable") = false,
        "Sorts along dim; returns (values, indices). NaN is the largest value; always stable.");
  cls.def("sort", sort_fn, py::arg("dim") = -1, py::arg("descending") = false, py::kw_only(),
          py::arg("stable") = false);

  auto argsort_fn = [](const Tensor& t, int64_t dim, bool descending, bool stable) {
    return argsort(t, dim, descending, stable);
  };
  m.def("argsort", argsort_fn, py::arg("input"), py::arg("dim") = -1,
        py::arg("descending") = false, py::kw_only(), py::arg("stable") = false,
        "The indices that sort input along dim.");
  cls.def("argsort", argsort_fn, py::arg("dim") = -1, py::arg("descending") = false,
          py::kw_only(), py::arg("stable") = false);

  auto topk_fn = [topk_t](const Tensor& t, int64_t k, int64_t dim, bool largest, bool sorted) {
    auto [values, indices] = topk(t, k, dim, largest, sorted);
    return topk_t(values, indices);
  };
  m.def("topk", topk_fn, py::arg("input"), py::arg("k"), py::arg("dim") = -1,
        py::arg("largest") = true, py::arg("sorted") = true,
        "The k largest (or smallest) elements along dim and their indices, in sorted order.");
  cls.def("topk", topk_fn, py::arg("k"), py::arg("dim") = -1, py::arg("largest") = true,
          py::arg("sorted") = true);

  // Returns the tensor alone, or a tuple with the inverse and/or counts asked for.
  auto unique_fn = [](const Tensor& t, bool sorted, bool return_inverse, bool return_counts,
                      py::object dim) -> py::object {
    if (!dim.is_none())
      throw py::value_error("[unique] dim is not supported yet; only dim=None (the flattened "
                            "input) is");
    auto [values, inverse, counts] = unique(t, sorted, return_inverse, return_counts);
    if (!return_inverse && !return_counts) return py::cast(values);
    py::list out;
    out.append(values);
    if (return_inverse) out.append(inverse);
    if (return_counts) out.append(counts);
    return py::tuple(out);
  };
  m.def("unique", unique_fn, py::arg("input"), py::arg("sorted") = true,
        py::arg("return_inverse") = false, py::arg("return_counts") = false,
        py::arg("dim") = py::none(),
        "The sorted distinct elements of the flattened input (dim=None only), optionally "
        "with the inverse indices and the counts.");
  cls.def("unique", unique_fn, py::arg("sorted") = true, py::arg("return_inverse") = false,
          py::arg("return_counts") = false, py::arg("dim") = py::none());
}

}  // namespace kiln::python
