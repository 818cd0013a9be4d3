// Elementwise ops with three operands or extra parameters.
#include "kiln/ops/pointwise.h"

#include <limits>

#include "kiln/autocast.h"
#include "kiln/autograd/node.h"
#include "kiln/dispatch.h"
#include "kiln/dtype_dispatch.h"
#include "kiln/error.h"
#include "kiln/ops/binary.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/promotion.h"
#include "kiln/ops/unary.h"

namespace kiln {

using autograd::BackwardArgs;

namespace {
using TernaryKernel = void(const Tensor&, const Tensor&, const Tensor&, const Tensor&);
using ScaledTernaryKernel = void(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                 double);

Tensor cast(const Tensor& t, ScalarType ct) {
  return t.dtype() == ct ? t : to_dtype(detach(t), ct);
}

Shape broadcast3(const Tensor& a, const Tensor& b, const Tensor& c, const char* op) {
  return broadcast_shapes(a.sizes(), broadcast_shapes(b.sizes(), c.sizes(), op), op);
}

Tensor zero_of(const Tensor& g) { return zeros({}, g.dtype(), g.device()); }

// The lowest (or highest) value of dtype t: stands in for a missing clamp bound.
Tensor extreme(ScalarType t, bool highest, Device device) {
  if (is_floating(t)) {
    const double inf = std::numeric_limits<double>::infinity();
    return scalar_tensor(highest ? inf : -inf, t, device);
  }
  return visit_dtype(t, [&]<class T>(TypeTag<T>) {
    using L = std::numeric_limits<T>;
    return scalar_tensor(static_cast<int64_t>(highest ? L::max() : L::lowest()), t, device);
  });
}
}  // namespace

Tensor clamp(const Tensor& a, const Tensor& min, const Tensor& max) {
  KILN_CHECK(min.defined() || max.defined(), ValueError,
             "[clamp] at least one of 'min' or 'max' must not be None");
  KILN_CHECK(a.dtype() != ScalarType::Bool, TypeError,
             "[clamp] is not implemented for bool tensors");
  check_same_device({a, min, max}, "clamp");
  const ScalarType ct = result_type({a, min, max});
  const Device device = a.device();
  Tensor lo = min.defined() ? cast(min, ct) : extreme(ct, false, device);
  Tensor hi = max.defined() ? cast(max, ct) : extreme(ct, true, device);
  Tensor out = empty(broadcast3(a, lo, hi, "clamp"), ct, device);
  static const dispatch::Op<TernaryKernel> k("clamp");
  k(device, out, cast(a, ct), lo, hi);
  if (autograd::needs_grad({a, min, max}))
    autograd::record("ClampBackward1", {a, min, max}, {out}, {a, lo, hi},
                     [](const BackwardArgs& g) {
                       const Tensor &x = g.saved[0], &lo = g.saved[1], &hi = g.saved[2];
                       Tensor zero = zero_of(g.grad());
                       // The result is min(max(x, lo), hi); at a boundary the gradient
                       // goes to x, as in PyTorch.
                       Tensor to_hi = logical_or(gt(x, hi), gt(lo, hi));
                       Tensor to_lo = logical_and(lt(x, lo), logical_not(to_hi));
                       Tensor to_x = logical_and(ge(x, lo), le(x, hi));
                       return TensorList{g.needs(0) ? where(to_x, g.grad(), zero) : Tensor(),
                                         g.needs(1) ? where(to_lo, g.grad(), zero) : Tensor(),
                                         g.needs(2) ? where(to_hi, g.grad(), zero) : Tensor()};
                     });
  return out;
}
Tensor& clamp_(Tensor& self, const Tensor& min, const Tensor& max) {
  return elementwise::inplace_from("clamp_", self, {min, max},
                                   [&](const Tensor& s) { return clamp(s, min, max); });
}

Tensor lerp(const Tensor& start, const Tensor& end, const Tensor& weight) {
  check_same_device({start, end, weight}, "lerp");
  KILN_CHECK(start.dtype() == end.dtype(), TypeError,
             "[lerp] expected start and end to have the same dtype, got ", start.dtype(), " and ",
             end.dtype());
  KILN_CHECK(start.is_floating_point(), TypeError, "[lerp] expected floating point tensors, got ",
             start.dtype());
  const ScalarType ct = start.dtype();
  KILN_CHECK(weight.impl()->is_wrapped_number || weight.dtype() == ct, TypeError,
             "[lerp] expected weight to have dtype ", ct, ", got ", weight.dtype());
  Tensor w = cast(weight, ct);
  Tensor out = empty(broadcast3(start, end, w, "lerp"), ct, start.device());
  static const dispatch::Op<TernaryKernel> k("lerp");
  k(start.device(), out, start, end, w);
  if (autograd::needs_grad({start, end, weight}))
    autograd::record("LerpBackward1", {start, end, weight}, {out}, {start, end, w},
                     [](const BackwardArgs& g) {
                       const Tensor &s = g.saved[0], &e = g.saved[1], &w = g.saved[2];
                       return TensorList{g.needs(0) ? g.grad() * (1 - w) : Tensor(),
                                         g.needs(1) ? g.grad() * w : Tensor(),
                                         g.needs(2) ? g.grad() * (e - s) : Tensor()};
                     });
  return out;
}
Tensor& lerp_(Tensor& self, const Tensor& end, const Tensor& weight) {
  return elementwise::inplace_from("lerp_", self, {end, weight},
                                   [&](const Tensor& s) { return lerp(s, end, weight); });
}

Tensor masked_fill(const Tensor& a, const Tensor& mask, const Tensor& value) {
  KILN_CHECK(mask.dtype() == ScalarType::Bool, TypeError,
             "[masked_fill] expected mask to be a bool tensor, got ", mask.dtype());
  KILN_CHECK(value.dim() == 0, ValueError,
             "[masked_fill] only supports a 0-dimensional value tensor, but got a tensor with ",
             value.dim(), " dimension(s)");
  // The fill value takes a's dtype (it never promotes the result).
  Tensor v = value.dtype() == a.dtype() && !value.impl()->is_wrapped_number
                 ? value
                 : (autograd::needs_grad({value}) && is_floating(a.dtype())
                        ? to_dtype(value, a.dtype())
                        : scalar_tensor(item(value), a.dtype(), a.device()));
  return where(mask, v, a);
}
Tensor& masked_fill_(Tensor& self, const Tensor& mask, const Tensor& value) {
  return elementwise::inplace_from("masked_fill_", self, {value},
                                   [&](const Tensor& s) { return masked_fill(s, mask, value); });
}

namespace {
// addcmul/addcdiv share everything but the kernel and the t1/t2 formulas.
Tensor addc(bool is_div, const Tensor& input, const Tensor& t1, const Tensor& t2, Scalar value) {
  const char* op = is_div ? "addcdiv" : "addcmul";
  check_same_device({input, t1, t2}, op);
  KILN_CHECK(!is_div || t1.is_floating_point() || t2.is_floating_point(), TypeError, "[", op,
             "] integer division with addcdiv is not supported; use floating point tensors");
  const ScalarType ct = result_type({input, t1, t2});
  KILN_CHECK(is_floating(ct) || !value.is_floating(), TypeError, "[", op,
             "] a floating point value needs floating point tensors, got ", ct);
  Tensor out = empty(broadcast3(input, t1, t2, op), ct, input.device());
  static const dispatch::Op<ScaledTernaryKernel> kmul("addcmul"), kdiv("addcdiv");
  (is_div ? kdiv : kmul)(input.device(), out, cast(input, ct), cast(t1, ct), cast(t2, ct),
                         value.to_double());
  if (autograd::needs_grad({input, t1, t2}))
    autograd::record(is_div ? "AddcdivBackward0" : "AddcmulBackward0", {input, t1, t2}, {out},
                     {t1, t2}, [is_div, value](const BackwardArgs& g) {
                       const Tensor &a = g.saved[0], &b = g.saved[1];
                       Tensor gv = g.grad() * value;
                       Tensor d1, d2;
                       if (g.needs(1)) d1 = is_div ? gv / b : gv * b;
                       if (g.needs(2)) d2 = is_div ? -(gv * a / (b * b)) : gv * a;
                       return TensorList{g.needs(0) ? g.grad() : Tensor(), d1, d2};
                     });
  return out;
}

// Optimizer updates run this in place on parameters: no temporary when the
// operands already have self's dtype and broadcast to its shape.
Tensor& addc_(bool is_div, Tensor& self, const Tensor& t1, const Tensor& t2, Scalar value) {
  const char* op = is_div ? "addcdiv_" : "addcmul_";
  return elementwise::inplace(
      op, self, {t1, t2}, true, [&](const Tensor& s) { return addc(is_div, s, t1, t2, value); },
      [&]() -> Tensor& {
        const bool direct = t1.dtype() == self.dtype() && t2.dtype() == self.dtype() &&
                            is_expandable_to(t1.sizes(), self.sizes()) &&
                            is_expandable_to(t2.sizes(), self.sizes()) &&
                            (is_floating(self.dtype()) || !is_div);
        if (!direct)
          return elementwise::inplace_from(
              op, self, {}, [&](const Tensor& s) { return addc(is_div, s, t1, t2, value); });
        check_same_device({self, t1, t2}, op);
        static const dispatch::Op<ScaledTernaryKernel> kmul("addcmul"), kdiv("addcdiv");
        (is_div ? kdiv : kmul)(self.device(), self, self, t1, t2, value.to_double());
        self.bump_version();
        return self;
      });
}
}  // namespace

Tensor addcmul(const Tensor& input, const Tensor& t1, const Tensor& t2, Scalar value) {
  KILN_AUTOCAST(kPromoteCuda, addcmul, input, t1, t2, value);
  return addc(false, input, t1, t2, value);
}
Tensor& addcmul_(Tensor& self, const Tensor& t1, const Tensor& t2, Scalar value) {
  return addc_(false, self, t1, t2, value);
}
Tensor addcdiv(const Tensor& input, const Tensor& t1, const Tensor& t2, Scalar value) {
  KILN_AUTOCAST(kPromoteCuda, addcdiv, input, t1, t2, value);
  return addc(true, input, t1, t2, value);
}
Tensor& addcdiv_(Tensor& self, const Tensor& t1, const Tensor& t2, Scalar value) {
  return addc_(true, self, t1, t2, value);
}

Tensor nan_to_num(const Tensor& a, double nan, std::optional<double> posinf,
                  std::optional<double> neginf) {
  if (!a.is_floating_point()) return clone(a);
  const Device d = a.device();
  const double big = a.dtype() == ScalarType::Float16    ? 65504.0
                     : a.dtype() == ScalarType::BFloat16 ? 3.3895313892515355e38
                     : a.dtype() == ScalarType::Float32  ? std::numeric_limits<float>::max()
                                                         : std::numeric_limits<double>::max();
  Tensor hi = scalar_tensor(posinf.value_or(big), a.dtype(), d);
  Tensor lo = scalar_tensor(neginf.value_or(-big), a.dtype(), d);
  return where(isnan(a), scalar_tensor(nan, a.dtype(), d),
               where(isposinf(a), hi, where(isneginf(a), lo, a)));
}

}  // namespace kiln
