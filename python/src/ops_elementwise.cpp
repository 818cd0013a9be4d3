// Bindings for elementwise ops: kiln.<op>(...), Tensor.<op>(...), the
// in-place Tensor.<op>_(...) forms and the Python operators. Python numbers
// on either side become wrapped scalars, so they promote as in PyTorch.
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "args.h"
#include "caster.h"
#include "kiln/error.h"
#include "kiln/ops.h"
#include "module.h"

namespace py = pybind11;

namespace kiln::python {

namespace {
using TensorClass = py::class_<TensorImpl, std::shared_ptr<TensorImpl>>;
using Unary = Tensor (*)(const Tensor&);
using UnaryInplace = Tensor& (*)(Tensor&);
using Binary = Tensor (*)(const Tensor&, const Tensor&);
using BinaryInplace = Tensor& (*)(Tensor&, const Tensor&);

py::object not_implemented() { return py::reinterpret_borrow<py::object>(Py_NotImplemented); }

// An optional operand: None -> undefined, number -> wrapped scalar, or a tensor.
Tensor optional_operand(py::handle h, Device device, const char* op) {
  return h.is_none() ? Tensor() : tensor_or_scalar(h, device, op);
}

void def_unary(TensorClass& cls, py::module_& m, const char* name, Unary fn,
               UnaryInplace inplace = nullptr, const char* doc = nullptr) {
  m.def(name, fn, py::arg("input"), doc);
  cls.def(name, fn, doc);
  if (inplace)
    cls.def((std::string(name) + "_").c_str(), [inplace](Tensor& self) -> Tensor {
      inplace(self);
      return self;
    });
}

// kiln.name(input, other), Tensor.name(other), Tensor.name_(other) and, when
// given, the operator dunders (forward, reflected, in-place). A name starting
// with '_' binds only the dunders (for ops whose named forms take more arguments).
struct Dunders {
  const char* op = nullptr;
  const char* rop = nullptr;
  const char* iop = nullptr;
};
void def_binary(TensorClass& cls, py::module_& m, const char* name, Binary fn,
                BinaryInplace inplace = nullptr, Dunders d = {}, const char* doc = nullptr) {
  const bool named = name[0] != '_';
  if (!named) ++name;
  if (named)
    m.def(
        name,
        [fn, name](py::handle a, py::handle b) {
          Tensor x = tensor_or_scalar(a, Device(), name);
          return fn(x, tensor_or_scalar(b, x.device(), name));
        },
        py::arg("input"), py::arg("other"), doc);
  if (named)
    cls.def(
        name,
        [fn, name](const Tensor& self, py::handle other) {
          return fn(self, tensor_or_scalar(other, self.device(), name));
        },
        py::arg("other"), doc);
  auto ip = [inplace, name](Tensor& self, py::handle other) -> Tensor {
    inplace(self, tensor_or_scalar(other, self.device(), name));
    return self;
  };
  if (inplace && named) cls.def((std::string(name) + "_").c_str(), ip, py::arg("other"));
  // Operators return NotImplemented for foreign types so Python can try the other side.
  if (d.op)
    cls.def(d.op, [fn, name](const Tensor& self, py::handle other) -> py::object {
      if (!is_tensor_or_scalar(other)) return not_implemented();
      return py::cast(fn(self, tensor_or_scalar(other, self.device(), name)));
    });
  if (d.rop)
    cls.def(d.rop, [fn, name](const Tensor& self, py::handle other) -> py::object {
      if (!is_tensor_or_scalar(other)) return not_implemented();
      return py::cast(fn(tensor_or_scalar(other, self.device(), name), self));
    });
  if (d.iop)
    cls.def(d.iop, [ip](Tensor& self, py::handle other) -> py::object {
      if (!is_tensor_or_scalar(other)) return not_implemented();
      return py::cast(ip(self, other));
    });
}

void init_arithmetic(TensorClass& cls, py::module_& m) {
  // add/sub take alpha: input + alpha * other.
  for (auto [name, fn, ip] :
       {std::tuple{"add", &kiln::add, &kiln::add_}, std::tuple{"sub", &kiln::sub, &kiln::sub_},
        std::tuple{"subtract", &kiln::sub, &kiln::sub_}}) {
    m.def(
        name,
        [fn, name](py::handle a, py::handle b, Scalar alpha) {
          Tensor x = tensor_or_scalar(a, Device(), name);
          return fn(x, tensor_or_scalar(b, x.device(), name), alpha);
        },
        py::arg("input"), py::arg("other"), py::kw_only(), py::arg("alpha") = 1);
    cls.def(
        name,
        [fn, name](const Tensor& self, py::handle other, Scalar alpha) {
          return fn(self, tensor_or_scalar(other, self.device(), name), alpha);
        },
        py::arg("other"), py::kw_only(), py::arg("alpha") = 1);
    cls.def((std::string(name) + "_").c_str(),
            [ip, name](Tensor& self, py::handle other, Scalar alpha) -> Tensor {
              ip(self, tensor_or_scalar(other, self.device(), name), alpha);
              return self;
            },
            py::arg("other"), py::kw_only(), py::arg("alpha") = 1);
  }
  m.def(
      "rsub",
      [](py::handle a, py::handle b, Scalar alpha) {
        Tensor x = tensor_or_scalar(a, Device(), "rsub");
        return rsub(x, tensor_or_scalar(b, x.device(), "rsub"), alpha);
      },
      py::arg("input"), py::arg("other"), py::kw_only(), py::arg("alpha") = 1);
  auto add2 = [](const Tensor& a, const Tensor& b) { return add(a, b); };
  auto add2_ = [](Tensor& a, const Tensor& b) -> Tensor& { return add_(a, b); };
  auto sub2 = [](const Tensor& a, const Tensor& b) { return sub(a, b); };
  auto sub2_ = [](Tensor& a, const Tensor& b) -> Tensor& { return sub_(a, b); };
  def_binary(cls, m, "_add", add2, add2_, {"__add__", "__radd__", "__iadd__"});
  def_binary(cls, m, "_sub", sub2, sub2_, {"__sub__", "__rsub__", "__isub__"});
  def_binary(cls, m, "mul", &kiln::mul, &kiln::mul_, {"__mul__", "__rmul__", "__imul__"});
  def_binary(cls, m, "multiply", &kiln::mul, &kiln::mul_);
  def_binary(cls, m, "true_divide", &kiln::div, &kiln::div_,
             {"__truediv__", "__rtruediv__", "__itruediv__"});
  // div/divide take rounding_mode: None (true division), "trunc" or "floor".
  auto rounded = [](const Tensor& a, const Tensor& b, const std::optional<std::string>& mode) {
    if (!mode) return div(a, b);
    if (*mode == "floor") return floor_divide(a, b);
    if (*mode == "trunc") return trunc_divide(a, b);
    throw ValueError("[div] expected rounding_mode to be one of None, 'trunc' or 'floor', got '" +
                     *mode + "'");
  };
  for (const char* name : {"div", "divide"}) {
    m.def(
        name,
        [rounded, name](py::handle a, py::handle b, std::optional<std::string> mode) {
          Tensor x = tensor_or_scalar(a, Device(), name);
          return rounded(x, tensor_or_scalar(b, x.device(), name), mode);
        },
        py::arg("input"), py::arg("other"), py::kw_only(), py::arg("rounding_mode") = py::none());
    cls.def(
        name,
        [rounded, name](const Tensor& self, py::handle o, std::optional<std::string> mode) {
          return rounded(self, tensor_or_scalar(o, self.device(), name), mode);
        },
        py::arg("other"), py::kw_only(), py::arg("rounding_mode") = py::none());
    cls.def((std::string(name) + "_").c_str(),
            [rounded, name](Tensor& self, py::handle o, std::optional<std::string> mode) -> Tensor {
              Tensor other = tensor_or_scalar(o, self.device(), name);
              if (!mode) return div_(self, other);
              return elementwise::inplace_from(
                  "div_", self, {other}, [&](const Tensor& s) { return rounded(s, other, mode); });
            },
            py::arg("other"), py::kw_only(), py::arg("rounding_mode") = py::none());
  }
  def_binary(cls, m, "floor_divide", &kiln::floor_divide, &kiln::floor_divide_,
             {"__floordiv__", "__rfloordiv__", "__ifloordiv__"},
             "input / other rounded toward -inf; integer division by zero raises");
  def_binary(cls, m, "remainder", &kiln::remainder, &kiln::remainder_,
             {"__mod__", "__rmod__", "__imod__"},
             "Python-style modulus: the result has the sign of other");
  def_binary(cls, m, "fmod", &kiln::fmod, &kiln::fmod_, {},
             "C-style modulus: the result has the sign of input");
  def_binary(cls, m, "pow", &kiln::pow, &kiln::pow_, {"__pow__", "__rpow__", "__ipow__"},
             "input ** exponent; integer ** integer stays integer");
  def_binary(cls, m, "maximum", &kiln::maximum, nullptr, {}, "elementwise maximum; nan propagates");
  def_binary(cls, m, "minimum", &kiln::minimum, nullptr, {}, "elementwise minimum; nan propagates");
  def_binary(cls, m, "fmax", &kiln::fmax, nullptr, {}, "elementwise maximum ignoring nan");
  def_binary(cls, m, "fmin", &kiln::fmin, nullptr, {}, "elementwise minimum ignoring nan");
  def_binary(cls, m, "atan2", &kiln::atan2, &kiln::atan2_, {},
             "angle of the point (other, input), in (-pi, pi]");
  def_binary(cls, m, "arctan2", &kiln::atan2, &kiln::atan2_, {}, "alias of atan2");
  def_binary(cls, m, "hypot", &kiln::hypot, &kiln::hypot_, {}, "sqrt(input ** 2 + other ** 2)");

  cls.def("__neg__", &kiln::neg);
  cls.def("__abs__", &kiln::abs);
  cls.def("__pos__", [](const Tensor& t) {
    KILN_CHECK(t.dtype() != ScalarType::Bool, TypeError,
               "[positive] the `+` operator on a bool tensor is not supported");
    return t;
  });
  cls.def("__invert__", &kiln::bitwise_not);
}

void init_logical(TensorClass& cls, py::module_& m) {
  const std::tuple<const char*, const char*, Binary> cmps[] = {
      {"eq", "__eq__", &kiln::eq}, {"ne", "__ne__", &kiln::ne}, {"lt", "__lt__", &kiln::lt},
      {"le", "__le__", &kiln::le}, {"gt", "__gt__", &kiln::gt}, {"ge", "__ge__", &kiln::ge}};
  for (auto [name, dunder, fn] : cmps) def_binary(cls, m, name, fn, nullptr, {dunder});
  def_binary(cls, m, "logical_and", &kiln::logical_and, &kiln::logical_and_);
  def_binary(cls, m, "logical_or", &kiln::logical_or, &kiln::logical_or_);
  def_binary(cls, m, "logical_xor", &kiln::logical_xor, &kiln::logical_xor_);
  def_binary(cls, m, "bitwise_and", &kiln::bitwise_and, &kiln::bitwise_and_,
             {"__and__", "__rand__", "__iand__"});
  def_binary(cls, m, "bitwise_or", &kiln::bitwise_or, &kiln::bitwise_or_,
             {"__or__", "__ror__", "__ior__"});
  def_binary(cls, m, "bitwise_xor", &kiln::bitwise_xor, &kiln::bitwise_xor_,
             {"__xor__", "__rxor__", "__ixor__"});
  def_unary(cls, m, "logical_not", &kiln::logical_not, &kiln::logical_not_);
  def_unary(cls, m, "bitwise_not", &kiln::bitwise_not, &kiln::bitwise_not_);
  for (auto [name, fn] : {std::pair{"isfinite", &kiln::isfinite}, std::pair{"isnan", &kiln::isnan},
                          std::pair{"isinf", &kiln::isinf}, std::pair{"isposinf", &kiln::isposinf},
                          std::pair{"isneginf", &kiln::isneginf}})
    def_unary(cls, m, name, fn);

  auto where_fn = [](const Tensor& c, py::handle a, py::handle b) {
    return where(c, tensor_or_scalar(a, c.device(), "where"),
                 tensor_or_scalar(b, c.device(), "where"));
  };
  m.def("where", where_fn, py::arg("condition"), py::arg("input"), py::arg("other"));
  cls.def(
      "where",
      [](const Tensor& self, const Tensor& c, py::handle o) {
        return where(c, self, tensor_or_scalar(o, self.device(), "where"));
      },
      py::arg("condition"), py::arg("other"));
}

void init_unary(TensorClass& cls, py::module_& m) {
  // name, function, in-place form, docstring
  const std::tuple<const char*, Unary, UnaryInplace, const char*> ops[] = {
      {"neg", &kiln::neg, &kiln::neg_, "-input"},
      {"negative", &kiln::neg, &kiln::neg_, "-input (alias of neg)"},
      {"abs", &kiln::abs, &kiln::abs_, "|input|"},
      {"absolute", &kiln::abs, &kiln::abs_, "|input| (alias of abs)"},
      {"sign", &kiln::sign, &kiln::sign_, "-1, 0 or 1 by the sign of input (0 for nan)"},
      {"square", &kiln::square, &kiln::square_, "input * input"},
      {"exp", &kiln::exp, &kiln::exp_, "e ** input"},
      {"exp2", &kiln::exp2, &kiln::exp2_, "2 ** input"},
      {"log", &kiln::log, &kiln::log_, "natural logarithm"},
      {"log2", &kiln::log2, &kiln::log2_, "base-2 logarithm"},
      {"log10", &kiln::log10, &kiln::log10_, "base-10 logarithm"},
      {"log1p", &kiln::log1p, &kiln::log1p_, "log(1 + input), accurate near 0"},
      {"expm1", &kiln::expm1, &kiln::expm1_, "exp(input) - 1, accurate near 0"},
      {"sqrt", &kiln::sqrt, &kiln::sqrt_, "square root"},
      {"rsqrt", &kiln::rsqrt, &kiln::rsqrt_, "1 / sqrt(input)"},
      {"reciprocal", &kiln::reciprocal, &kiln::reciprocal_, "1 / input"},
      {"sin", &kiln::sin, &kiln::sin_, "sine"},
      {"cos", &kiln::cos, &kiln::cos_, "cosine"},
      {"tan", &kiln::tan, &kiln::tan_, "tangent"},
      {"asin", &kiln::asin, &kiln::asin_, "arcsine"},
      {"acos", &kiln::acos, &kiln::acos_, "arccosine"},
      {"atan", &kiln::atan, &kiln::atan_, "arctangent"},
      {"sinh", &kiln::sinh, &kiln::sinh_, "hyperbolic sine"},
      {"cosh", &kiln::cosh, &kiln::cosh_, "hyperbolic cosine"},
      {"tanh", &kiln::tanh, &kiln::tanh_, "hyperbolic tangent"},
      {"sigmoid", &kiln::sigmoid, &kiln::sigmoid_, "1 / (1 + exp(-input))"},
      {"relu", &kiln::relu, &kiln::relu_, "max(input, 0)"},
      {"silu", &kiln::silu, nullptr, "input * sigmoid(input)"},
      {"erf", &kiln::erf, &kiln::erf_, "error function"},
      {"erfc", &kiln::erfc, &kiln::erfc_, "1 - erf(input)"},
      {"floor", &kiln::floor, &kiln::floor_, "rounds down (integers unchanged)"},
      {"ceil", &kiln::ceil, &kiln::ceil_, "rounds up (integers unchanged)"},
      {"trunc", &kiln::trunc, &kiln::trunc_, "rounds toward zero (integers unchanged)"},
      {"fix", &kiln::trunc, &kiln::trunc_, "rounds toward zero (alias of trunc)"},
      {"frac", &kiln::frac, &kiln::frac_, "input - trunc(input)"},
  };
  for (auto [name, fn, ip, doc] : ops) def_unary(cls, m, name, fn, ip, doc);
  m.def("silu_", [](Tensor& t) -> Tensor { return silu_(t); }, py::arg("input"));
  m.def("relu_", [](Tensor& t) -> Tensor { return relu_(t); }, py::arg("input"));

  auto round_fn = [](const Tensor& t, int64_t decimals) { return round(t, decimals); };
  m.def("round", round_fn, py::arg("input"), py::kw_only(), py::arg("decimals") = 0);
  cls.def("round", round_fn, py::kw_only(), py::arg("decimals") = 0);
  cls.def(
      "round_", [](Tensor& t, int64_t decimals) -> Tensor { return round_(t, decimals); },
      py::kw_only(), py::arg("decimals") = 0);
  m.def(
      "gelu", [](const Tensor& t, const std::string& approximate) { return gelu(t, approximate); },
      py::arg("input"), py::kw_only(), py::arg("approximate") = "none");
  m.def(
      "softplus",
      [](const Tensor& t, double beta, double threshold) { return softplus(t, beta, threshold); },
      py::arg("input"), py::arg("beta") = 1.0, py::arg("threshold") = 20.0);
}

void init_pointwise(TensorClass& cls, py::module_& m) {
  // clamp/clip: bounds are tensors, numbers or None.
  auto clamp_fn = [](const Tensor& t, py::handle lo, py::handle hi) {
    return clamp(t, optional_operand(lo, t.device(), "clamp"),
                 optional_operand(hi, t.device(), "clamp"));
  };
  auto clamp_ip = [](Tensor& t, py::handle lo, py::handle hi) -> Tensor {
    return clamp_(t, optional_operand(lo, t.device(), "clamp_"),
                  optional_operand(hi, t.device(), "clamp_"));
  };
  for (const char* name : {"clamp", "clip"}) {
    m.def(name, clamp_fn, py::arg("input"), py::arg("min") = py::none(),
          py::arg("max") = py::none());
    cls.def(name, clamp_fn, py::arg("min") = py::none(), py::arg("max") = py::none());
    cls.def((std::string(name) + "_").c_str(), clamp_ip, py::arg("min") = py::none(),
            py::arg("max") = py::none());
  }
  auto clamp_min = [](const Tensor& t, py::handle lo) {
    return clamp(t, tensor_or_scalar(lo, t.device(), "clamp_min"), Tensor());
  };
  auto clamp_max = [](const Tensor& t, py::handle hi) {
    return clamp(t, Tensor(), tensor_or_scalar(hi, t.device(), "clamp_max"));
  };
  m.def("clamp_min", clamp_min, py::arg("input"), py::arg("min"));
  m.def("clamp_max", clamp_max, py::arg("input"), py::arg("max"));
  cls.def("clamp_min", clamp_min, py::arg("min"));
  cls.def("clamp_max", clamp_max, py::arg("max"));
  cls.def(
      "clamp_min_",
      [](Tensor& t, py::handle lo) -> Tensor {
        return clamp_(t, tensor_or_scalar(lo, t.device(), "clamp_min_"), Tensor());
      },
      py::arg("min"));
  cls.def(
      "clamp_max_",
      [](Tensor& t, py::handle hi) -> Tensor {
        return clamp_(t, Tensor(), tensor_or_scalar(hi, t.device(), "clamp_max_"));
      },
      py::arg("max"));

  auto lerp_fn = [](const Tensor& t, const Tensor& end, py::handle w) {
    return lerp(t, end, tensor_or_scalar(w, t.device(), "lerp"));
  };
  m.def("lerp", lerp_fn, py::arg("input"), py::arg("end"), py::arg("weight"));
  cls.def("lerp", lerp_fn, py::arg("end"), py::arg("weight"));
  cls.def(
      "lerp_",
      [](Tensor& t, const Tensor& end, py::handle w) -> Tensor {
        return lerp_(t, end, tensor_or_scalar(w, t.device(), "lerp_"));
      },
      py::arg("end"), py::arg("weight"));

  auto masked_fill_fn = [](const Tensor& t, const Tensor& mask, py::handle v) {
    return masked_fill(t, mask, tensor_or_scalar(v, t.device(), "masked_fill"));
  };
  m.def("masked_fill", masked_fill_fn, py::arg("input"), py::arg("mask"), py::arg("value"));
  cls.def("masked_fill", masked_fill_fn, py::arg("mask"), py::arg("value"));
  cls.def(
      "masked_fill_",
      [](Tensor& t, const Tensor& mask, py::handle v) -> Tensor {
        return masked_fill_(t, mask, tensor_or_scalar(v, t.device(), "masked_fill_"));
      },
      py::arg("mask"), py::arg("value"));

  for (auto [name, fn, ip] : {std::tuple{"addcmul", &kiln::addcmul, &kiln::addcmul_},
                              std::tuple{"addcdiv", &kiln::addcdiv, &kiln::addcdiv_}}) {
    m.def(name, fn, py::arg("input"), py::arg("tensor1"), py::arg("tensor2"), py::kw_only(),
          py::arg("value") = 1);
    cls.def(name, fn, py::arg("tensor1"), py::arg("tensor2"), py::kw_only(), py::arg("value") = 1);
    cls.def((std::string(name) + "_").c_str(),
            [ip](Tensor& t, const Tensor& a, const Tensor& b, Scalar v) -> Tensor {
              return ip(t, a, b, v);
            },
            py::arg("tensor1"), py::arg("tensor2"), py::kw_only(), py::arg("value") = 1);
  }

  auto nan_to_num_fn = [](const Tensor& t, double nan, std::optional<double> posinf,
                          std::optional<double> neginf) {
    return nan_to_num(t, nan, posinf, neginf);
  };
  m.def("nan_to_num", nan_to_num_fn, py::arg("input"), py::arg("nan") = 0.0,
        py::arg("posinf") = py::none(), py::arg("neginf") = py::none());
  cls.def("nan_to_num", nan_to_num_fn, py::arg("nan") = 0.0, py::arg("posinf") = py::none(),
          py::arg("neginf") = py::none());
}
}  // namespace

void init_ops_elementwise(py::module_& m) {
  auto cls = py::reinterpret_borrow<TensorClass>(m.attr("Tensor"));
  init_arithmetic(cls, m);
  init_logical(cls, m);
  init_unary(cls, m);
  init_pointwise(cls, m);
}

}  // namespace kiln::python
