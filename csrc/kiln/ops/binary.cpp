// Two-input elementwise ops: integer-aware division, pow, extrema, logical
// and bitwise ops, with their backward formulas.
#include "kiln/ops/binary.h"

#include "kiln/autocast.h"
#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/error.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/reduce.h"
#include "kiln/ops/unary.h"

namespace kiln {

using autograd::BackwardArgs;
using elementwise::Kind;

namespace {
using BinaryFn = Tensor (*)(const Tensor&, const Tensor&);

Tensor zero_like_grad(const Tensor& g) { return zeros({}, g.dtype(), g.device()); }

// Records `node` when an input needs grad; the formula sees saved = {a, b, out}.
Tensor record2(const char* node, const Tensor& a, const Tensor& b, Tensor out,
               autograd::BackwardFn fn) {
  if (autograd::needs_grad({a, b}))
    autograd::record(node, {a, b}, {out}, {a, b, out}, std::move(fn));
  return out;
}

// Integer division and remainder by zero would trap (SIGFPE): refuse them up front.
void check_divisor(const char* op, const Tensor& a, const Tensor& b) {
  const ScalarType ct = elementwise::compute_dtype(op, {a, b}, Kind::Arithmetic);
  KILN_CHECK(ct != ScalarType::Bool, TypeError, "[", op, "] is not implemented for bool tensors");
  if (is_floating(ct)) return;
  autograd::NoGradGuard no_grad;
  // Check the divisor as the kernel sees it: a number can wrap to 0 in a small type.
  const Tensor divisor = to_dtype(detach(b), ct);
  KILN_CHECK(item(all(ne(divisor, wrapped_scalar(0, b.device())))).to<bool>(), Error, "[", op,
             "] ZeroDivisionError: integer division or modulo by zero");
}

void check_integral(const char* op, const Tensor& a, const Tensor& b) {
  KILN_CHECK(!a.is_floating_point() && !b.is_floating_point(), TypeError, "[", op,
             "] expected bool or integer tensors, got ", a.dtype(), " and ", b.dtype());
}

void check_pow(const Tensor& a, const Tensor& b) {
  // A bool tensor to a Python number power is allowed, as in PyTorch.
  KILN_CHECK(
      a.dtype() != ScalarType::Bool || b.dtype() != ScalarType::Bool || b.impl()->is_wrapped_number,
      TypeError, "[pow] is not implemented for bool tensors");
  if (!b.impl()->is_wrapped_number || b.is_floating_point() || a.is_floating_point()) return;
  KILN_CHECK(item(b).to_int() >= 0, Error,
             "[pow] integers to negative integer powers are not allowed");
}

// x.op_(other): through op's kernel in place unless autograd needs the history.
Tensor& binary_inplace(const char* op, Tensor& self, const Tensor& other, Kind kind, BinaryFn fn) {
  return elementwise::inplace(
      op, self, {other}, true, [&](const Tensor& s) { return fn(s, other); },
      [&]() -> Tensor& { return elementwise::binary_(op, self, other, kind); });
}
}  // namespace

Tensor floor_divide(const Tensor& a, const Tensor& b) {
  check_divisor("floor_divide", a, b);
  return record2("FloorDivideBackward0", a, b,
                 elementwise::binary("floor_divide", a, b, Kind::Arithmetic),
                 [](const BackwardArgs& g) {
                   return TensorList{g.needs(0) ? zero_like_grad(g.grad()) : Tensor(),
                                     g.needs(1) ? zero_like_grad(g.grad()) : Tensor()};
                 });
}
Tensor& floor_divide_(Tensor& self, const Tensor& other) {
  check_divisor("floor_divide_", self, other);
  return binary_inplace("floor_divide", self, other, Kind::Arithmetic, floor_divide);
}

Tensor trunc_divide(const Tensor& a, const Tensor& b) {
  const ScalarType ct = elementwise::compute_dtype("div", {a, b}, Kind::Arithmetic);
  if (is_floating(ct)) return trunc(div(a, b));
  check_divisor("div", a, b);
  // Integer trunc division: floor division, corrected where the remainder has the other sign.
  autograd::NoGradGuard no_grad;
  Tensor q = floor_divide(a, b);
  Tensor adjust =
      logical_and(ne(fmod(a, b), wrapped_scalar(0, a.device())),
                  ne(lt(a, wrapped_scalar(0, a.device())), lt(b, wrapped_scalar(0, b.device()))));
  return where(adjust, q + 1, q);
}

Tensor remainder(const Tensor& a, const Tensor& b) {
  check_divisor("remainder", a, b);
  return record2("RemainderBackward0", a, b,
                 elementwise::binary("remainder", a, b, Kind::Arithmetic),
                 [](const BackwardArgs& g) {
                   return TensorList{
                       g.needs(0) ? g.grad() : Tensor(),
                       g.needs(1) ? -(g.grad() * floor_divide(g.saved[0], g.saved[1])) : Tensor()};
                 });
}
Tensor& remainder_(Tensor& self, const Tensor& other) {
  check_divisor("remainder_", self, other);
  return binary_inplace("remainder", self, other, Kind::Arithmetic, remainder);
}

Tensor fmod(const Tensor& a, const Tensor& b) {
  check_divisor("fmod", a, b);
  return record2("FmodBackward0", a, b, elementwise::binary("fmod", a, b, Kind::Arithmetic),
                 [](const BackwardArgs& g) {
                   return TensorList{
                       g.needs(0) ? g.grad() : Tensor(),
                       g.needs(1) ? -(g.grad() * trunc(g.saved[0] / g.saved[1])) : Tensor()};
                 });
}
Tensor& fmod_(Tensor& self, const Tensor& other) {
  check_divisor("fmod_", self, other);
  return binary_inplace("fmod", self, other, Kind::Arithmetic, fmod);
}

namespace {
// x ** 2, x ** 0.5, ... for a floating x and a number exponent: a cheaper kernel
// than std::pow (the common cases in models); the backward is pow's either way.
Tensor pow_forward(const Tensor& a, const Tensor& b) {
  if (a.is_floating_point() && b.impl()->is_wrapped_number) {
    const double e = item(b).to_double();
    const char* kernel = e == 2.0    ? "square"
                         : e == 0.5  ? "sqrt"
                         : e == -1.0 ? "reciprocal"
                         : e == -0.5 ? "rsqrt"
                                     : nullptr;
    if (kernel) return elementwise::unary(kernel, a, Kind::Arithmetic);
  }
  return elementwise::binary("pow", a, b, Kind::Arithmetic);
}
}  // namespace

Tensor pow(const Tensor& a, const Tensor& b) {
  KILN_AUTOCAST(kFloat32Cuda, pow, a, b);
  check_pow(a, b);
  return record2("PowBackward1", a, b, pow_forward(a, b),
                 [](const BackwardArgs& g) {
                   const Tensor &x = g.saved[0], &p = g.saved[1], &y = g.saved[2];
                   Tensor zero = zero_like_grad(g.grad());
                   Tensor dx, dp;
                   // d/dx x^p = p x^(p-1), taken as 0 where p == 0 (also at x == 0).
                   if (g.needs(0))
                     dx = where(eq(p, wrapped_scalar(0, p.device())), zero,
                                g.grad() * p * pow(x, p - 1));
                   // d/dp x^p = x^p log x, taken as 0 where x == 0 and p >= 0.
                   if (g.needs(1))
                     dp = where(logical_and(eq(x, wrapped_scalar(0, x.device())),
                                            ge(p, wrapped_scalar(0, p.device()))),
                                zero, g.grad() * y * log(x));
                   return TensorList{dx, dp};
                 });
}
Tensor& pow_(Tensor& self, const Tensor& other) {
  check_pow(self, other);
  return binary_inplace("pow", self, other, Kind::Arithmetic, pow);
}

Tensor rsub(const Tensor& a, const Tensor& b, Scalar alpha) { return sub(b, a, alpha); }

namespace {
// maximum/minimum: the losing input gets no gradient; ties split it in half and
// a nan (which propagates) passes it to both, as in PyTorch.
TensorList extremum_backward(const BackwardArgs& g, BinaryFn loses) {
  const Tensor &a = g.saved[0], &b = g.saved[1];
  Tensor zero = zero_like_grad(g.grad());
  Tensor shared = where(eq(a, b), g.grad() * 0.5, g.grad());
  return TensorList{g.needs(0) ? where(loses(a, b), zero, shared) : Tensor(),
                    g.needs(1) ? where(loses(b, a), zero, shared) : Tensor()};
}
// fmax/fmin: the chosen input gets all of it (a on ties, the non-nan one otherwise).
TensorList fextremum_backward(const BackwardArgs& g, BinaryFn wins) {
  const Tensor &a = g.saved[0], &b = g.saved[1];
  Tensor zero = zero_like_grad(g.grad());
  Tensor a_chosen = logical_or(wins(a, b), isnan(b));
  return TensorList{g.needs(0) ? where(a_chosen, g.grad(), zero) : Tensor(),
                    g.needs(1) ? where(a_chosen, zero, g.grad()) : Tensor()};
}
Tensor ge_or_eq(const Tensor& a, const Tensor& b) { return ge(a, b); }
Tensor le_or_eq(const Tensor& a, const Tensor& b) { return le(a, b); }
Tensor less(const Tensor& a, const Tensor& b) { return lt(a, b); }
Tensor greater(const Tensor& a, const Tensor& b) { return gt(a, b); }
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) {
  return record2("MaximumBackward0", a, b, elementwise::binary("maximum", a, b, Kind::Arithmetic),
                 [](const BackwardArgs& g) { return extremum_backward(g, less); });
}
Tensor minimum(const Tensor& a, const Tensor& b) {
  return record2("MinimumBackward0", a, b, elementwise::binary("minimum", a, b, Kind::Arithmetic),
                 [](const BackwardArgs& g) { return extremum_backward(g, greater); });
}
Tensor fmax(const Tensor& a, const Tensor& b) {
  return record2("FmaxBackward0", a, b, elementwise::binary("fmax", a, b, Kind::Arithmetic),
                 [](const BackwardArgs& g) { return fextremum_backward(g, ge_or_eq); });
}
Tensor fmin(const Tensor& a, const Tensor& b) {
  return record2("FminBackward0", a, b, elementwise::binary("fmin", a, b, Kind::Arithmetic),
                 [](const BackwardArgs& g) { return fextremum_backward(g, le_or_eq); });
}

Tensor atan2(const Tensor& a, const Tensor& b) {
  KILN_AUTOCAST(kPromoteCuda, atan2, a, b);
  return record2("Atan2Backward0", a, b, elementwise::binary("atan2", a, b, Kind::FloatMath),
                 [](const BackwardArgs& g) {
                   const Tensor &y = g.saved[0], &x = g.saved[1];
                   Tensor scale = g.grad() / (x * x + y * y);
                   return TensorList{g.needs(0) ? scale * x : Tensor(),
                                     g.needs(1) ? -(scale * y) : Tensor()};
                 });
}
Tensor& atan2_(Tensor& self, const Tensor& other) {
  return binary_inplace("atan2", self, other, Kind::FloatMath, atan2);
}

Tensor hypot(const Tensor& a, const Tensor& b) {
  KILN_CHECK(is_floating(elementwise::compute_dtype("hypot", {a, b}, Kind::Arithmetic)), TypeError,
             "[hypot] expected floating point inputs, got ", a.dtype(), " and ", b.dtype());
  return record2("HypotBackward0", a, b, elementwise::binary("hypot", a, b, Kind::FloatMath),
                 [](const BackwardArgs& g) {
                   Tensor scale = g.grad() / g.saved[2];
                   return TensorList{g.needs(0) ? scale * g.saved[0] : Tensor(),
                                     g.needs(1) ? scale * g.saved[1] : Tensor()};
                 });
}
Tensor& hypot_(Tensor& self, const Tensor& other) {
  return binary_inplace("hypot", self, other, Kind::FloatMath, hypot);
}

Tensor logical_and(const Tensor& a, const Tensor& b) {
  return elementwise::binary("logical_and", a, b, Kind::Predicate);
}
Tensor logical_or(const Tensor& a, const Tensor& b) {
  return elementwise::binary("logical_or", a, b, Kind::Predicate);
}
Tensor logical_xor(const Tensor& a, const Tensor& b) {
  return elementwise::binary("logical_xor", a, b, Kind::Predicate);
}
Tensor& logical_and_(Tensor& s, const Tensor& o) {
  return binary_inplace("logical_and", s, o, Kind::Predicate, logical_and);
}
Tensor& logical_or_(Tensor& s, const Tensor& o) {
  return binary_inplace("logical_or", s, o, Kind::Predicate, logical_or);
}
Tensor& logical_xor_(Tensor& s, const Tensor& o) {
  return binary_inplace("logical_xor", s, o, Kind::Predicate, logical_xor);
}

Tensor bitwise_and(const Tensor& a, const Tensor& b) {
  check_integral("bitwise_and", a, b);
  return elementwise::binary("bitwise_and", a, b, Kind::Arithmetic);
}
Tensor bitwise_or(const Tensor& a, const Tensor& b) {
  check_integral("bitwise_or", a, b);
  return elementwise::binary("bitwise_or", a, b, Kind::Arithmetic);
}
Tensor bitwise_xor(const Tensor& a, const Tensor& b) {
  check_integral("bitwise_xor", a, b);
  return elementwise::binary("bitwise_xor", a, b, Kind::Arithmetic);
}
Tensor& bitwise_and_(Tensor& s, const Tensor& o) {
  check_integral("bitwise_and_", s, o);
  return binary_inplace("bitwise_and", s, o, Kind::Arithmetic, bitwise_and);
}
Tensor& bitwise_or_(Tensor& s, const Tensor& o) {
  check_integral("bitwise_or_", s, o);
  return binary_inplace("bitwise_or", s, o, Kind::Arithmetic, bitwise_or);
}
Tensor& bitwise_xor_(Tensor& s, const Tensor& o) {
  check_integral("bitwise_xor_", s, o);
  return binary_inplace("bitwise_xor", s, o, Kind::Arithmetic, bitwise_xor);
}

}  // namespace kiln
