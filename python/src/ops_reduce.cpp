// Bindings for reductions, softmax and scans: module functions and Tensor methods.
#include <pybind11/stl.h>

#include <cmath>
#include <limits>

#include "args.h"
#include "caster.h"
#include "kiln/ops.h"
#include "module.h"

namespace py = pybind11;

namespace kiln::python {

namespace {

using TensorClass = py::class_<TensorImpl, std::shared_ptr<TensorImpl>>;

// `dim` as PyTorch takes it: None (all dims), an int, or a tuple/list of ints (() = all).
Shape dims_arg(py::handle dim, const char* op) {
  if (dim.is_none()) return {};
  auto one = [op](py::handle h) {
    if (!py::isinstance<py::int_>(h) || py::isinstance<py::bool_>(h))
      throw py::type_error(std::string("[") + op + "] dim must be an int, a tuple of ints or "
                           "None, got " + std::string(py::str(py::type::of(h).attr("__name__"))));
    return h.cast<int64_t>();
  };
  if (py::isinstance<py::int_>(dim) && !py::isinstance<py::bool_>(dim)) return {one(dim)};
  if (!py::isinstance<py::tuple>(dim) && !py::isinstance<py::list>(dim)) one(dim);
  Shape dims;
  for (auto h : dim) dims.push_back(one(h));
  return dims;
}

// Binds `fn(input, ...)` as kiln.<name> and as the Tensor method <name>(...).
template <class Fn, class... Extra>
void def_op(TensorClass& cls, py::module_& m, const char* name, const char* doc, Fn fn,
            const Extra&... extra) {
  m.def(name, fn, doc, py::arg("input"), extra...);
  cls.def(name, fn, doc, extra...);
}

// The correction var/std use: `correction` wins, else `unbiased` (True = 1), else 1.
double correction_arg(const char* op, py::handle unbiased, py::handle correction) {
  if (!correction.is_none()) {
    if (!unbiased.is_none())
      throw py::type_error(std::string("[") + op + "] pass either unbiased or correction, not both");
    return correction.cast<double>();
  }
  return unbiased.is_none() || unbiased.cast<bool>() ? 1.0 : 0.0;
}

// p for norm: a number, 'fro' (= 2) or inf; 'nuc' is a matrix norm and not supported.
double norm_p(py::handle p) {
  if (p.is_none()) return 2;
  if (py::isinstance<py::str>(p)) {
    const std::string s = p.cast<std::string>();
    if (s == "fro") return 2;
    throw py::value_error("[norm] unsupported norm type '" + s + "'; use 'fro' or a number");
  }
  return p.cast<double>();
}

py::object namedtuple(const char* name, std::initializer_list<const char*> fields) {
  py::list names;
  for (const char* f : fields) names.append(f);
  py::object cls = py::module_::import("collections").attr("namedtuple")(name, names);
  cls.attr("__module__") = "kiln.return_types";
  // Printed like torch.return_types: one field per line.
  const std::string type_name = std::string("kiln.return_types.") + name;
  cls.attr("__repr__") = py::cpp_function(
      [type_name](py::object self) {
        std::string out = type_name + "(";
        py::tuple fields = self.attr("_fields");
        for (size_t i = 0; i < fields.size(); ++i)
          out += "\n" + fields[i].cast<std::string>() + "=" +
                 py::repr(self.attr(fields[i])).cast<std::string>() + (i + 1 < fields.size() ? "," : "");
        return out + ")";
      },
      py::is_method(cls));
  return cls;
}

}  // namespace

void init_ops_reduce(py::module_& m) {
  auto cls = py::reinterpret_borrow<TensorClass>(m.attr("Tensor"));
  py::module_ rt = m.def_submodule("return_types", "Named tuples returned by reductions.");
  const py::object max_t = namedtuple("max", {"values", "indices"});
  const py::object min_t = namedtuple("min", {"values", "indices"});
  const py::object aminmax_t = namedtuple("aminmax", {"min", "max"});
  rt.attr("max") = max_t;
  rt.attr("min") = min_t;
  rt.attr("aminmax") = aminmax_t;

  const auto dim = py::arg("dim") = py::none();
  const auto keepdim = py::arg("keepdim") = false;
  const auto dtype = py::arg("dtype") = py::none();
  using OptDtype = std::optional<ScalarType>;

  // sum-like: (input, dim=None, keepdim=False, *, dtype=None).
  using SumLike = Tensor (*)(const Tensor&, const Shape&, bool, OptDtype);
  struct SumOp {
    const char* name;
    SumLike fn;
    const char* doc;
  };
  for (const SumOp& op : {
           SumOp{"sum", &sum, "Sum over dim (all if None); ints and bools sum in int64."},
           SumOp{"mean", &mean, "Mean over dim (all if None); floating inputs or dtype= only."},
           SumOp{"nansum", &nansum, "Sum treating NaN as zero."},
           SumOp{"nanmean", &nanmean, "Mean over the non-NaN elements."},
           SumOp{"prod", &prod, "Product over dim (all if None); ints and bools in int64."}}) {
    const SumLike fn = op.fn;
    const char* name = op.name;
    def_op(cls, m, name, op.doc,
           [fn, name](const Tensor& t, py::object d, bool k, OptDtype dt) {
             return fn(t, dims_arg(d, name), k, dt);
           },
           dim, keepdim, py::kw_only(), dtype);
  }
  def_op(cls, m, "all", "True where every element over dim is nonzero.",
         [](const Tensor& t, py::object d, bool k) { return all(t, dims_arg(d, "all"), k); },
         dim, keepdim);
  def_op(cls, m, "any", "True where some element over dim is nonzero.",
         [](const Tensor& t, py::object d, bool k) { return any(t, dims_arg(d, "any"), k); },
         dim, keepdim);
  def_op(cls, m, "count_nonzero", "Number of nonzero elements over dim (int64).",
         [](const Tensor& t, py::object d) { return count_nonzero(t, dims_arg(d, "count_nonzero")); },
         dim);

  // var/std(input, dim=None, unbiased=None, keepdim=False, *, correction=None); a bool
  // second argument is `unbiased`, as in torch.var(x, False).
  struct MomentOp {
    const char* name;
    bool take_sqrt, with_mean;
  };
  for (const MomentOp& op : {MomentOp{"var", false, false}, MomentOp{"std", true, false},
                             MomentOp{"var_mean", false, true}, MomentOp{"std_mean", true, true}}) {
    const MomentOp o = op;
    def_op(cls, m, o.name, "Variance / standard deviation with divisor N - correction.",
           [o](const Tensor& t, py::object d, py::object unbiased, bool k,
               py::object corr) -> py::object {
             if (py::isinstance<py::bool_>(d)) {
               unbiased = d;
               d = py::none();
             }
             const Shape dims = dims_arg(d, o.name);
             const double c = correction_arg(o.name, unbiased, corr);
             if (o.with_mean) {
               auto r = o.take_sqrt ? std_mean(t, dims, c, k) : var_mean(t, dims, c, k);
               return py::make_tuple(r.first, r.second);
             }
             return py::cast(o.take_sqrt ? kiln::std(t, dims, c, k) : var(t, dims, c, k));
           },
           dim, py::arg("unbiased") = py::none(), keepdim, py::kw_only(),
           py::arg("correction") = py::none());
  }

  // max/min: (input) -> value; (input, dim, keepdim=False) -> (values, indices);
  // (input, other: Tensor) -> elementwise maximum/minimum.
  struct BestOp {
    const char* name;
    const char* elementwise;
    bool is_max;
    py::object type;
  };
  for (const BestOp& op : {BestOp{"max", "maximum", true, max_t}, BestOp{"min", "minimum", false, min_t}}) {
    const BestOp o = op;
    auto elementwise = [o, m](const Tensor& t, const Tensor& other) -> py::object {
      if (!py::hasattr(m, o.elementwise))
        throw py::type_error(std::string("[") + o.name + "] the elementwise form needs kiln." +
                             o.elementwise + ", which is not available");
      return m.attr(o.elementwise)(t, other);
    };
    auto reduce = [o](const Tensor& t, py::object d, bool k) -> py::object {
      if (d.is_none()) {
        if (k) throw py::type_error(std::string("[") + o.name + "] keepdim needs a dim");
        return py::cast(o.is_max ? max(t) : min(t));
      }
      if (!py::isinstance<py::int_>(d) || py::isinstance<py::bool_>(d))
        throw py::type_error(std::string("[") + o.name + "] dim must be an int, got " +
                             std::string(py::str(py::type::of(d).attr("__name__"))));
      auto [v, i] = o.is_max ? max(t, d.cast<int64_t>(), k) : min(t, d.cast<int64_t>(), k);
      return o.type(v, i);
    };
    const char* doc = "The max/min value; with dim, a (values, indices) named tuple.";
    m.def(o.name, elementwise, py::arg("input"), py::arg("other"));
    m.def(o.name, reduce, doc, py::arg("input"), dim, keepdim);
    cls.def(o.name, elementwise, py::arg("other"));
    cls.def(o.name, reduce, doc, dim, keepdim);
  }
  def_op(cls, m, "amax", "Max over one or several dims; the gradient is shared among ties.",
         [](const Tensor& t, py::object d, bool k) { return amax(t, dims_arg(d, "amax"), k); },
         py::arg("dim") = py::tuple(), keepdim);
  def_op(cls, m, "amin", "Min over one or several dims; the gradient is shared among ties.",
         [](const Tensor& t, py::object d, bool k) { return amin(t, dims_arg(d, "amin"), k); },
         py::arg("dim") = py::tuple(), keepdim);
  def_op(cls, m, "aminmax", "(min, max) over dim (all if None), as a named tuple.",
         [aminmax_t](const Tensor& t, std::optional<int64_t> d, bool k) {
           auto [lo, hi] = aminmax(t, d, k);
           return aminmax_t(lo, hi);
         },
         py::kw_only(), dim, keepdim);
  def_op(cls, m, "argmax", "Index of the max along dim; of the flattened tensor if dim is None.",
         [](const Tensor& t, std::optional<int64_t> d, bool k) { return argmax(t, d, k); }, dim,
         keepdim);
  def_op(cls, m, "argmin", "Index of the min along dim; of the flattened tensor if dim is None.",
         [](const Tensor& t, std::optional<int64_t> d, bool k) { return argmin(t, d, k); }, dim,
         keepdim);

  def_op(cls, m, "logsumexp", "log(sum(exp(input))) over dim, computed without overflow.",
         [](const Tensor& t, py::object d, bool k) { return logsumexp(t, dims_arg(d, "logsumexp"), k); },
         dim, keepdim);
  def_op(cls, m, "softmax", "exp(x) / sum(exp(x)) along dim (fused and numerically stable).",
         [](const Tensor& t, int64_t d, OptDtype dt) { return softmax(t, d, dt); }, py::arg("dim"),
         dtype);
  def_op(cls, m, "log_softmax", "x - logsumexp(x) along dim (fused and numerically stable).",
         [](const Tensor& t, int64_t d, OptDtype dt) { return log_softmax(t, d, dt); },
         py::arg("dim"), dtype);
  def_op(cls, m, "cumsum", "Running sum along dim; ints and bools accumulate in int64.",
         [](const Tensor& t, int64_t d, OptDtype dt) { return cumsum(t, d, dt); }, py::arg("dim"),
         py::kw_only(), dtype);
  def_op(cls, m, "cumprod", "Running product along dim; ints and bools accumulate in int64.",
         [](const Tensor& t, int64_t d, OptDtype dt) { return cumprod(t, d, dt); }, py::arg("dim"),
         py::kw_only(), dtype);
  def_op(cls, m, "norm", "Vector p-norm over dim (all if None): p = 'fro', a number or +-inf.",
         [](const Tensor& t, py::object p, py::object d, bool k, OptDtype dt) {
           return norm(t, norm_p(p), dims_arg(d, "norm"), k, dt);
         },
         py::arg("p") = "fro", dim, keepdim, dtype);
}

}  // namespace kiln::python
