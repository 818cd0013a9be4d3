#include "kiln/ops/elementwise.h"

#include <memory>
#include <unordered_map>

#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/dispatch.h"
#include "kiln/error.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/promotion.h"
#include "kiln/ops/reduce.h"

namespace kiln {

using autograd::BackwardArgs;

namespace elementwise {

using UnaryKernel = void(const Tensor&, const Tensor&);
using BinaryKernel = void(const Tensor&, const Tensor&, const Tensor&);

ScalarType compute_dtype(const char*, std::initializer_list<Tensor> inputs, Kind kind) {
  ScalarType t = result_type(inputs);
  if (kind == Kind::FloatMath && !is_floating(t)) t = default_float_dtype();
  return t;
}

static ScalarType output_dtype(ScalarType compute, Kind kind) {
  return kind == Kind::Predicate ? ScalarType::Bool : compute;
}

// Kernel handles by op name; op names are string literals, so their address is the key.
template <class Sig>
static const dispatch::Op<Sig>& kernel_for(const char* op) {
  thread_local std::unordered_map<const char*, std::unique_ptr<dispatch::Op<Sig>>> cache;
  auto& slot = cache[op];
  if (!slot) slot = std::make_unique<dispatch::Op<Sig>>(op);
  return *slot;
}
static const dispatch::Op<UnaryKernel>& unary_kernel(const char* op) {
  return kernel_for<UnaryKernel>(op);
}
static const dispatch::Op<BinaryKernel>& binary_kernel(const char* op) {
  return kernel_for<BinaryKernel>(op);
}

Tensor unary(const char* op, const Tensor& a, Kind kind) {
  const ScalarType ct = compute_dtype(op, {a}, kind);
  Tensor in = to_dtype(detach(a), ct);
  Tensor out = empty(a.sizes(), output_dtype(ct, kind), a.device());
  unary_kernel(op)(a.device(), out, in);
  return out;
}

Tensor binary(const char* op, const Tensor& a, const Tensor& b, Kind kind) {
  check_same_device({a, b}, op);
  const ScalarType ct = compute_dtype(op, {a, b}, kind);
  const Device device = a.impl()->is_wrapped_number ? b.device() : a.device();
  Tensor x = a.dtype() == ct ? a : to_dtype(detach(a), ct);
  Tensor y = b.dtype() == ct ? b : to_dtype(detach(b), ct);
  if (x.device() != device) x = to_device(x, device);
  if (y.device() != device) y = to_device(y, device);
  const Shape shape =
      a.sizes() == b.sizes() ? a.sizes() : broadcast_shapes(a.sizes(), b.sizes(), op);
  Tensor out = empty(shape, output_dtype(ct, kind), device);
  binary_kernel(op)(device, out, x, y);
  return out;
}

static void check_castable(const char* op, ScalarType result, ScalarType out) {
  const bool ok = is_floating(out) ||
                  (!is_floating(result) && (out != ScalarType::Bool || result == ScalarType::Bool));
  KILN_CHECK(ok, TypeError, "[", op, "] result type ", result,
             " can't be cast to the desired output type ", out);
}

Tensor& binary_(const char* op, Tensor& self, const Tensor& other, Kind kind) {
  check_same_device({self, other}, op);
  const ScalarType ct = compute_dtype(op, {self, other}, kind);
  check_castable(op, output_dtype(ct, kind), self.dtype());
  KILN_CHECK(is_expandable_to(other.sizes(), self.sizes()), ValueError, "[", op,
             "] output with shape ", self.sizes(), " doesn't match the broadcast shape ",
             broadcast_shapes(self.sizes(), other.sizes(), op));
  check_no_overlap(self, other, op);
  if (output_dtype(ct, kind) != self.dtype()) {
    Tensor r = binary(op, self, other, kind);
    autograd::NoGradGuard no_grad;
    return copy_(self, r);
  }
  Tensor y = other.dtype() == ct ? other : to_dtype(detach(other), ct);
  Tensor x = self.dtype() == ct ? self : to_dtype(detach(self), ct);
  binary_kernel(op)(self.device(), self, x, y);
  self.bump_version();
  return self;
}

Tensor& unary_(const char* op, Tensor& self, Kind kind) {
  const ScalarType ct = compute_dtype(op, {self}, kind);
  check_castable(op, output_dtype(ct, kind), self.dtype());
  if (output_dtype(ct, kind) != self.dtype()) {
    Tensor r = unary(op, self, kind);
    autograd::NoGradGuard no_grad;
    return copy_(self, r);
  }
  unary_kernel(op)(self.device(), self, self);
  self.bump_version();
  return self;
}

Tensor& inplace(const char* op, Tensor& self, std::initializer_list<Tensor> others,
                bool needs_old_self, const std::function<Tensor(const Tensor&)>& out_of_place,
                const std::function<Tensor&()>& in_place) {
  bool grad = autograd::needs_grad({self});
  for (const Tensor& o : others) grad = grad || autograd::needs_grad({o});
  if (!grad) return in_place();
  check_inplace(self, op);
  Tensor result = out_of_place(needs_old_self ? clone(self) : self);
  check_castable(op, result.dtype(), self.dtype());
  rebase_history(self, result);
  return self;
}

Tensor& inplace_from(const char* op, Tensor& self, std::initializer_list<Tensor> others,
                     const std::function<Tensor(const Tensor&)>& fn) {
  return inplace(op, self, others, true, fn, [&]() -> Tensor& {
    Tensor result = fn(self);
    check_castable(op, result.dtype(), self.dtype());
    KILN_CHECK(result.sizes() == self.sizes(), ValueError, "[", op, "] output with shape ",
               self.sizes(), " doesn't match the broadcast shape ", result.sizes());
    rebase_history(self, result);
    return self;
  });
}

Tensor with_grad(const char* node, const Tensor& x, Tensor out, UnaryFormula formula, Uses uses) {
  if (!autograd::needs_grad({x})) return out;
  TensorList save;
  if (uses != Uses::Neither) save.push_back(uses == Uses::Input ? x : out);
  autograd::record(node, {x}, {out}, save, [formula, uses](const BackwardArgs& g) {
    const Tensor none;
    const Tensor& saved = uses == Uses::Neither ? none : g.saved[0];
    return TensorList{
        formula(g.grad(), uses == Uses::Input ? saved : none, uses == Uses::Output ? saved : none)};
  });
  return out;
}

}  // namespace elementwise

using elementwise::inplace;
using elementwise::Kind;

namespace {
Tensor scaled(const Tensor& b, Scalar alpha) {
  if (!alpha.is_floating() && alpha.to_int() == 1) return b;
  return mul(b, wrapped_scalar(alpha, b.device()));
}
}  // namespace

Tensor add(const Tensor& a, const Tensor& b, Scalar alpha) {
  Tensor bb = scaled(b, alpha);
  Tensor out = elementwise::binary("add", a, bb, Kind::Arithmetic);
  if (autograd::needs_grad({a, bb}))
    autograd::record("AddBackward0", {a, bb}, {out}, {},
                     [](const BackwardArgs& g) { return TensorList{g.grad(), g.grad()}; });
  return out;
}

Tensor sub(const Tensor& a, const Tensor& b, Scalar alpha) {
  KILN_CHECK(a.dtype() != ScalarType::Bool && b.dtype() != ScalarType::Bool, TypeError,
             "[sub] subtraction, the `-` operator, with a bool tensor is not supported; use "
             "the `^` or logical_xor() operator instead");
  Tensor bb = scaled(b, alpha);
  Tensor out = elementwise::binary("sub", a, bb, Kind::Arithmetic);
  if (autograd::needs_grad({a, bb}))
    autograd::record("SubBackward0", {a, bb}, {out}, {},
                     [](const BackwardArgs& g) { return TensorList{g.grad(), neg(g.grad())}; });
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = elementwise::binary("mul", a, b, Kind::Arithmetic);
  if (autograd::needs_grad({a, b}))
    autograd::record("MulBackward0", {a, b}, {out}, {a, b}, [](const BackwardArgs& g) {
      return TensorList{g.needs(0) ? g.grad() * g.saved[1] : Tensor(),
                        g.needs(1) ? g.grad() * g.saved[0] : Tensor()};
    });
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = elementwise::binary("div", a, b, Kind::FloatMath);
  if (autograd::needs_grad({a, b}))
    autograd::record("DivBackward0", {a, b}, {out}, {a, b}, [](const BackwardArgs& g) {
      const Tensor& x = g.saved[0];
      const Tensor& y = g.saved[1];
      return TensorList{g.needs(0) ? g.grad() / y : Tensor(),
                        g.needs(1) ? neg(g.grad()) * x / (y * y) : Tensor()};
    });
  return out;
}

Tensor& add_(Tensor& self, const Tensor& other, Scalar alpha) {
  Tensor o = scaled(other, alpha);
  return inplace(
      "add_", self, {o}, false, [&](const Tensor& s) { return add(s, o); },
      [&]() -> Tensor& { return elementwise::binary_("add", self, o, Kind::Arithmetic); });
}

Tensor& sub_(Tensor& self, const Tensor& other, Scalar alpha) {
  KILN_CHECK(self.dtype() != ScalarType::Bool && other.dtype() != ScalarType::Bool, TypeError,
             "[sub_] subtraction, the `-` operator, with a bool tensor is not supported; use "
             "the `^` or logical_xor() operator instead");
  Tensor o = scaled(other, alpha);
  return inplace(
      "sub_", self, {o}, false, [&](const Tensor& s) { return sub(s, o); },
      [&]() -> Tensor& { return elementwise::binary_("sub", self, o, Kind::Arithmetic); });
}

Tensor& mul_(Tensor& self, const Tensor& other) {
  return inplace(
      "mul_", self, {other}, true, [&](const Tensor& s) { return mul(s, other); },
      [&]() -> Tensor& { return elementwise::binary_("mul", self, other, Kind::Arithmetic); });
}

Tensor& div_(Tensor& self, const Tensor& other) {
  return inplace(
      "div_", self, {other}, true, [&](const Tensor& s) { return div(s, other); },
      [&]() -> Tensor& { return elementwise::binary_("div", self, other, Kind::FloatMath); });
}

Tensor eq(const Tensor& a, const Tensor& b) {
  return elementwise::binary("eq", a, b, Kind::Predicate);
}
Tensor ne(const Tensor& a, const Tensor& b) {
  return elementwise::binary("ne", a, b, Kind::Predicate);
}
Tensor lt(const Tensor& a, const Tensor& b) {
  return elementwise::binary("lt", a, b, Kind::Predicate);
}
Tensor le(const Tensor& a, const Tensor& b) {
  return elementwise::binary("le", a, b, Kind::Predicate);
}
Tensor gt(const Tensor& a, const Tensor& b) {
  return elementwise::binary("gt", a, b, Kind::Predicate);
}
Tensor ge(const Tensor& a, const Tensor& b) {
  return elementwise::binary("ge", a, b, Kind::Predicate);
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_same_device({cond, a, b}, "where");
  KILN_CHECK(cond.dtype() == ScalarType::Bool, TypeError,
             "[where] expected condition to be a bool tensor, got ", cond.dtype());
  const ScalarType ct = result_type({a, b});
  const Device device = cond.device();
  const Shape shape =
      broadcast_shapes(cond.sizes(), broadcast_shapes(a.sizes(), b.sizes(), "where"), "where");
  Tensor x = to_device(a.dtype() == ct ? a : to_dtype(detach(a), ct), device);
  Tensor y = to_device(b.dtype() == ct ? b : to_dtype(detach(b), ct), device);
  Tensor out = empty(shape, ct, device);
  static const dispatch::Op<void(const Tensor&, const Tensor&, const Tensor&, const Tensor&)>
      kernel("where");
  kernel(device, out, cond, x, y);
  if (autograd::needs_grad({a, b}))
    autograd::record("WhereBackward0", {a, b}, {out}, {cond}, [](const BackwardArgs& g) {
      const Tensor& c = g.saved[0];
      Tensor zero = zeros({}, g.grad().dtype(), g.grad().device());
      return TensorList{g.needs(0) ? where(c, g.grad(), zero) : Tensor(),
                        g.needs(1) ? where(c, zero, g.grad()) : Tensor()};
    });
  return out;
}

Tensor neg(const Tensor& a) {
  KILN_CHECK(a.dtype() != ScalarType::Bool, TypeError,
             "[neg] negation, the `-` operator, on a bool tensor is not supported; use the `~` "
             "or logical_not() operator instead");
  Tensor out = elementwise::unary("neg", a, Kind::Arithmetic);
  if (autograd::needs_grad({a}))
    autograd::record("NegBackward0", {a}, {out}, {},
                     [](const BackwardArgs& g) { return TensorList{neg(g.grad())}; });
  return out;
}

Tensor operator+(const Tensor& a, Scalar b) { return add(a, wrapped_scalar(b, a.device())); }
Tensor operator-(const Tensor& a, Scalar b) { return sub(a, wrapped_scalar(b, a.device())); }
Tensor operator*(const Tensor& a, Scalar b) { return mul(a, wrapped_scalar(b, a.device())); }
Tensor operator/(const Tensor& a, Scalar b) { return div(a, wrapped_scalar(b, a.device())); }
Tensor operator*(Scalar a, const Tensor& b) { return mul(wrapped_scalar(a, b.device()), b); }
Tensor operator-(Scalar a, const Tensor& b) { return sub(wrapped_scalar(a, b.device()), b); }

}  // namespace kiln
