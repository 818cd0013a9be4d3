// One-input math ops and their backward formulas (written with kiln ops, so
// they are differentiable again).
#include "kiln/ops/unary.h"

#include <cmath>
#include <cstdlib>

#include "kiln/autocast.h"
#include "kiln/error.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/elementwise.h"

namespace kiln {

using elementwise::Kind;
using elementwise::Uses;
using elementwise::with_grad;

namespace {
constexpr double kLn2 = 0.69314718055994530942;
constexpr double kLn10 = 2.30258509299404568402;
constexpr double kTwoOverSqrtPi = 1.12837916709551257390;

// x.op_(): through op's kernel in place unless autograd needs the history.
Tensor& unary_inplace(const char* op, Tensor& self, Kind kind, Tensor (*fn)(const Tensor&)) {
  return elementwise::inplace(op, self, {}, true, fn,
                              [&]() -> Tensor& { return elementwise::unary_(op, self, kind); });
}

Tensor zero_gradient(const Tensor& g, const Tensor&, const Tensor&) { return zeros_like(g); }

void check_not_bool(const char* op, const Tensor& a) {
  KILN_CHECK(a.dtype() != ScalarType::Bool, TypeError, "[", op,
             "] is not implemented for bool tensors");
}

// floor/ceil/round/trunc: integers are already integral; floats use the kernel.
Tensor rounding(const char* op, const char* node, const Tensor& a) {
  check_not_bool(op, a);
  if (!a.is_floating_point()) return clone(a);
  return with_grad(node, a, elementwise::unary(op, a, Kind::Arithmetic), zero_gradient, Uses::Neither);
}
Tensor& rounding_(const char* op, Tensor& self, Tensor (*fn)(const Tensor&)) {
  check_not_bool(op, self);
  if (!self.is_floating_point()) return self;
  return unary_inplace(op, self, Kind::Arithmetic, fn);
}
}  // namespace

Tensor abs(const Tensor& a) {
  check_not_bool("abs", a);
  return with_grad("AbsBackward0", a, elementwise::unary("abs", a, Kind::Arithmetic),
                   [](const Tensor& g, const Tensor& x, const Tensor&) { return g * sign(x); });
}
Tensor sign(const Tensor& a) {
  return with_grad("SignBackward0", a, elementwise::unary("sign", a, Kind::Arithmetic), zero_gradient,
                   Uses::Neither);
}
Tensor square(const Tensor& a) {
  // Like PyTorch (pow(x, 2)), bool squares to int64.
  const Tensor& x = a.dtype() == ScalarType::Bool ? to_dtype(a, ScalarType::Int64) : a;
  return with_grad("PowBackward0", x, elementwise::unary("square", x, Kind::Arithmetic),
                   [](const Tensor& g, const Tensor& x, const Tensor&) { return g * x * 2; });
}
Tensor exp(const Tensor& a) {
  KILN_AUTOCAST(kFloat32Cuda, exp, a);
  return with_grad(
      "ExpBackward0", a, elementwise::unary("exp", a, Kind::FloatMath),
      [](const Tensor& g, const Tensor&, const Tensor& y) { return g * y; }, Uses::Output);
}
Tensor exp2(const Tensor& a) {
  return with_grad(
      "Exp2Backward0", a, elementwise::unary("exp2", a, Kind::FloatMath),
      [](const Tensor& g, const Tensor&, const Tensor& y) { return g * y * kLn2; }, Uses::Output);
}
Tensor log(const Tensor& a) {
  KILN_AUTOCAST(kFloat32Cuda, log, a);
  return with_grad("LogBackward0", a, elementwise::unary("log", a, Kind::FloatMath),
                   [](const Tensor& g, const Tensor& x, const Tensor&) { return g / x; });
}
Tensor log2(const Tensor& a) {
  KILN_AUTOCAST(kFloat32Cuda, log2, a);
  return with_grad("Log2Backward0", a, elementwise::unary("log2", a, Kind::FloatMath),
                   [](const Tensor& g, const Tensor& x, const Tensor&) { return g / (x * kLn2); });
}
Tensor log10(const Tensor& a) {
  KILN_AUTOCAST(kFloat32Cuda, log10, a);
  return with_grad("Log10Backward0", a, elementwise::unary("log10", a, Kind::FloatMath),
                   [](const Tensor& g, const Tensor& x, const Tensor&) { return g / (x * kLn10); });
}
Tensor log1p(const Tensor& a) {
  KILN_AUTOCAST(kFloat32Cuda, log1p, a);
  return with_grad("Log1PBackward0", a, elementwise::unary("log1p", a, Kind::FloatMath),
                   [](const Tensor& g, const Tensor& x, const Tensor&) { return g / (x + 1); });
}
Tensor expm1(const Tensor& a) {
  KILN_AUTOCAST(kFloat32Cuda, expm1, a);
  return with_grad(
      "Expm1Backward0", a, elementwise::unary("expm1", a, Kind::FloatMath),
      [](const Tensor& g, const Tensor&, const Tensor& y) { return g * (y + 1); }, Uses::Output);
}
Tensor sqrt(const Tensor& a) {
  return with_grad(
      "SqrtBackward0", a, elementwise::unary("sqrt", a, Kind::FloatMath),
      [](const Tensor& g, const Tensor&, const Tensor& y) { return g / (y * 2); }, Uses::Output);
}
Tensor rsqrt(const Tensor& a) {
  KILN_AUTOCAST(kFloat32Cuda, rsqrt, a);
  return with_grad(
      "RsqrtBackward0", a, elementwise::unary("rsqrt", a, Kind::FloatMath),
      [](const Tensor& g, const Tensor&, const Tensor& y) { return g * (y * y * y) * -0.5; },
      Uses::Output);
}
Tensor reciprocal(const Tensor& a) {
  KILN_AUTOCAST(kFloat32Cuda, reciprocal, a);
  return with_grad(
      "ReciprocalBackward0", a, elementwise::unary("reciprocal", a, Kind::FloatMath),
      [](const Tensor& g, const Tensor&, const Tensor& y) { return -(g * y * y); }, Uses::Output);
}
Tensor sin(const Tensor& a) {
  return with_grad("SinBackward0", a, elementwise::unary("sin", a, Kind::FloatMath),
                   [](const Tensor& g, const Tensor& x, const Tensor&) { return g * cos(x); });
}
Tensor cos(const Tensor& a) {
  return with_grad("CosBackward0", a, elementwise::unary("cos", a, Kind::FloatMath),
                   [](const Tensor& g, const Tensor& x, const Tensor&) { return -(g * sin(x)); });
}
Tensor tan(const Tensor& a) {
  KILN_AUTOCAST(kFloat32Cuda, tan, a);
  return with_grad(
      "TanBackward0", a, elementwise::unary("tan", a, Kind::FloatMath),
      [](const Tensor& g, const Tensor&, const Tensor& y) { return g * (y * y + 1); },
      Uses::Output);
}
Tensor asin(const Tensor& a) {
  KILN_AUTOCAST(kFloat32Cuda, asin, a);
  return with_grad(
      "AsinBackward0", a, elementwise::unary("asin", a, Kind::FloatMath),
      [](const Tensor& g, const Tensor& x, const Tensor&) { return g * rsqrt(1 - x * x); });
}
Tensor acos(const Tensor& a) {
  KILN_AUTOCAST(kFloat32Cuda, acos, a);
  return with_grad(
      "AcosBackward0", a, elementwise::unary("acos", a, Kind::FloatMath),
      [](const Tensor& g, const Tensor& x, const Tensor&) { return -(g * rsqrt(1 - x * x)); });
}
Tensor atan(const Tensor& a) {
  return with_grad("AtanBackward0", a, elementwise::unary("atan", a, Kind::FloatMath),
                   [](const Tensor& g, const Tensor& x, const Tensor&) { return g / (x * x + 1); });
}
Tensor sinh(const Tensor& a) {
  KILN_AUTOCAST(kFloat32Cuda, sinh, a);
  return with_grad("SinhBackward0", a, elementwise::unary("sinh", a, Kind::FloatMath),
                   [](const Tensor& g, const Tensor& x, const Tensor&) { return g * cosh(x); });
}
Tensor cosh(const Tensor& a) {
  KILN_AUTOCAST(kFloat32Cuda, cosh, a);
  return with_grad("CoshBackward0", a, elementwise::unary("cosh", a, Kind::FloatMath),
                   [](const Tensor& g, const Tensor& x, const Tensor&) { return g * sinh(x); });
}
Tensor tanh(const Tensor& a) {
  return with_grad(
      "TanhBackward0", a, elementwise::unary("tanh", a, Kind::FloatMath),
      [](const Tensor& g, const Tensor&, const Tensor& y) { return g * (1 - y * y); },
      Uses::Output);
}
Tensor erf(const Tensor& a) {
  return with_grad("ErfBackward0", a, elementwise::unary("erf", a, Kind::FloatMath),
                   [](const Tensor& g, const Tensor& x, const Tensor&) {
                     return g * exp(-(x * x)) * kTwoOverSqrtPi;
                   });
}
Tensor erfc(const Tensor& a) {
  return with_grad("ErfcBackward0", a, elementwise::unary("erfc", a, Kind::FloatMath),
                   [](const Tensor& g, const Tensor& x, const Tensor&) {
                     return g * exp(-(x * x)) * -kTwoOverSqrtPi;
                   });
}

Tensor floor(const Tensor& a) { return rounding("floor", "FloorBackward0", a); }
Tensor ceil(const Tensor& a) { return rounding("ceil", "CeilBackward0", a); }
Tensor trunc(const Tensor& a) { return rounding("trunc", "TruncBackward0", a); }
Tensor round(const Tensor& a, int64_t decimals) {
  if (decimals == 0) return rounding("round", "RoundBackward0", a);
  KILN_CHECK(a.is_floating_point(), TypeError,
             "[round] decimals is only supported for floating point tensors, got ", a.dtype());
  // As PyTorch: round(x * 10^d) / 10^d, with the scale kept exact for negative d.
  const double scale = std::pow(10.0, static_cast<double>(std::llabs(decimals)));
  Tensor r = decimals > 0 ? round(a * scale) / scale : round(a / scale) * scale;
  return r;
}
Tensor frac(const Tensor& a) {
  KILN_CHECK(a.is_floating_point(), TypeError, "[frac] expected a floating point tensor, got ",
             a.dtype());
  return with_grad(
      "FracBackward0", a, elementwise::unary("frac", a, Kind::Arithmetic),
      [](const Tensor& g, const Tensor&, const Tensor&) { return g; }, Uses::Neither);
}

Tensor isfinite(const Tensor& a) { return elementwise::unary("isfinite", a, Kind::Predicate); }
Tensor isnan(const Tensor& a) { return elementwise::unary("isnan", a, Kind::Predicate); }
Tensor isinf(const Tensor& a) { return elementwise::unary("isinf", a, Kind::Predicate); }
Tensor isposinf(const Tensor& a) { return elementwise::unary("isposinf", a, Kind::Predicate); }
Tensor isneginf(const Tensor& a) { return elementwise::unary("isneginf", a, Kind::Predicate); }
Tensor logical_not(const Tensor& a) {
  return elementwise::unary("logical_not", a, Kind::Predicate);
}
Tensor bitwise_not(const Tensor& a) {
  KILN_CHECK(!a.is_floating_point(), TypeError,
             "[bitwise_not] expected a bool or integer tensor, got ", a.dtype());
  return elementwise::unary("bitwise_not", a, Kind::Arithmetic);
}

// In-place forms.
Tensor& abs_(Tensor& s) {
  check_not_bool("abs_", s);
  return unary_inplace("abs", s, Kind::Arithmetic, abs);
}
Tensor& sign_(Tensor& s) { return unary_inplace("sign", s, Kind::Arithmetic, sign); }
Tensor& square_(Tensor& s) { return unary_inplace("square", s, Kind::Arithmetic, square); }
Tensor& neg_(Tensor& s) {
  KILN_CHECK(s.dtype() != ScalarType::Bool, TypeError,
             "[neg_] negation, the `-` operator, on a bool tensor is not supported; use the `~` "
             "or logical_not() operator instead");
  return unary_inplace("neg", s, Kind::Arithmetic, neg);
}
Tensor& exp_(Tensor& s) { return unary_inplace("exp", s, Kind::FloatMath, exp); }
Tensor& exp2_(Tensor& s) { return unary_inplace("exp2", s, Kind::FloatMath, exp2); }
Tensor& log_(Tensor& s) { return unary_inplace("log", s, Kind::FloatMath, log); }
Tensor& log2_(Tensor& s) { return unary_inplace("log2", s, Kind::FloatMath, log2); }
Tensor& log10_(Tensor& s) { return unary_inplace("log10", s, Kind::FloatMath, log10); }
Tensor& log1p_(Tensor& s) { return unary_inplace("log1p", s, Kind::FloatMath, log1p); }
Tensor& expm1_(Tensor& s) { return unary_inplace("expm1", s, Kind::FloatMath, expm1); }
Tensor& sqrt_(Tensor& s) { return unary_inplace("sqrt", s, Kind::FloatMath, sqrt); }
Tensor& rsqrt_(Tensor& s) { return unary_inplace("rsqrt", s, Kind::FloatMath, rsqrt); }
Tensor& reciprocal_(Tensor& s) {
  return unary_inplace("reciprocal", s, Kind::FloatMath, reciprocal);
}
Tensor& sin_(Tensor& s) { return unary_inplace("sin", s, Kind::FloatMath, sin); }
Tensor& cos_(Tensor& s) { return unary_inplace("cos", s, Kind::FloatMath, cos); }
Tensor& tan_(Tensor& s) { return unary_inplace("tan", s, Kind::FloatMath, tan); }
Tensor& asin_(Tensor& s) { return unary_inplace("asin", s, Kind::FloatMath, asin); }
Tensor& acos_(Tensor& s) { return unary_inplace("acos", s, Kind::FloatMath, acos); }
Tensor& atan_(Tensor& s) { return unary_inplace("atan", s, Kind::FloatMath, atan); }
Tensor& sinh_(Tensor& s) { return unary_inplace("sinh", s, Kind::FloatMath, sinh); }
Tensor& cosh_(Tensor& s) { return unary_inplace("cosh", s, Kind::FloatMath, cosh); }
Tensor& tanh_(Tensor& s) { return unary_inplace("tanh", s, Kind::FloatMath, tanh); }
Tensor& erf_(Tensor& s) { return unary_inplace("erf", s, Kind::FloatMath, erf); }
Tensor& erfc_(Tensor& s) { return unary_inplace("erfc", s, Kind::FloatMath, erfc); }
Tensor& floor_(Tensor& s) { return rounding_("floor", s, floor); }
Tensor& ceil_(Tensor& s) { return rounding_("ceil", s, ceil); }
Tensor& trunc_(Tensor& s) { return rounding_("trunc", s, trunc); }
Tensor& round_(Tensor& s, int64_t decimals) {
  if (decimals == 0) return rounding_("round", s, [](const Tensor& t) { return round(t); });
  return elementwise::inplace_from("round_", s, {},
                                   [decimals](const Tensor& t) { return round(t, decimals); });
}
Tensor& frac_(Tensor& s) {
  KILN_CHECK(s.is_floating_point(), TypeError, "[frac_] expected a floating point tensor, got ",
             s.dtype());
  return unary_inplace("frac", s, Kind::Arithmetic, frac);
}
Tensor& logical_not_(Tensor& s) {
  return unary_inplace("logical_not", s, Kind::Predicate, logical_not);
}
Tensor& bitwise_not_(Tensor& s) {
  KILN_CHECK(!s.is_floating_point(), TypeError,
             "[bitwise_not_] expected a bool or integer tensor, got ", s.dtype());
  return unary_inplace("bitwise_not", s, Kind::Arithmetic, bitwise_not);
}

}  // namespace kiln
