// Activation functions. Backward formulas use kiln ops (double backward works).
#include "kiln/ops/activation.h"

#include "kiln/autocast.h"
#include "kiln/autograd/node.h"
#include "kiln/dispatch.h"
#include "kiln/error.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/unary.h"

namespace kiln {

using elementwise::Kind;
using elementwise::Uses;
using elementwise::with_grad;

namespace {
constexpr double kInvSqrt2Pi = 0.39894228040143267794;  // 1 / sqrt(2 pi)
constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr double kGeluTanhC = 0.044715;

// Like PyTorch, these activations take floating inputs only (no promotion).
void check_floating(const char* op, const Tensor& a) {
  KILN_CHECK(a.is_floating_point(), TypeError, "[", op, "] expected a floating point tensor, got ",
             a.dtype());
}

Tensor& inplace_kernel(const char* op, Tensor& self, Tensor (*fn)(const Tensor&)) {
  return elementwise::inplace(op, self, {}, true, fn, [&]() -> Tensor& {
    return elementwise::unary_(op, self, Kind::FloatMath);
  });
}

// grad where relu's output y is positive, 0 elsewhere (relu at 0 gets 0, as in
// PyTorch), in one kernel. Linear in grad, so its own backward is itself.
Tensor relu_backward(const Tensor& grad, const Tensor& y) {
  Tensor out = elementwise::binary("relu_backward", grad, y, Kind::Arithmetic);
  if (autograd::needs_grad({grad}))
    autograd::record("ReluBackwardBackward0", {grad}, {out}, {y},
                     [](const autograd::BackwardArgs& g) {
                       return TensorList{relu_backward(g.grad(), g.saved[0])};
                     });
  return out;
}
}  // namespace

Tensor sigmoid(const Tensor& a) {
  return with_grad(
      "SigmoidBackward0", a, elementwise::unary("sigmoid", a, Kind::FloatMath),
      [](const Tensor& g, const Tensor&, const Tensor& y) { return g * y * (1 - y); },
      Uses::Output);
}
Tensor& sigmoid_(Tensor& self) { return inplace_kernel("sigmoid", self, sigmoid); }

Tensor relu(const Tensor& a) {
  KILN_CHECK(a.dtype() != ScalarType::Bool, TypeError, "[relu] bool inputs are not supported");
  return with_grad(
      "ReluBackward0", a, elementwise::unary("relu", a, Kind::Arithmetic),
      [](const Tensor& g, const Tensor&, const Tensor& y) { return relu_backward(g, y); },
      Uses::Output);
}
Tensor& relu_(Tensor& self) {
  KILN_CHECK(self.dtype() != ScalarType::Bool, TypeError, "[relu_] bool inputs are not supported");
  return elementwise::inplace("relu_", self, {}, true, relu, [&]() -> Tensor& {
    return elementwise::unary_("relu", self, Kind::Arithmetic);
  });
}

Tensor gelu(const Tensor& a, const std::string& approximate) {
  KILN_CHECK(approximate == "none" || approximate == "tanh", ValueError,
             "[gelu] approximate must be 'none' or 'tanh', got '", approximate, "'");
  check_floating("gelu", a);
  if (approximate == "none")
    return with_grad("GeluBackward0", a, elementwise::unary("gelu", a, Kind::FloatMath),
                     [](const Tensor& g, const Tensor& x, const Tensor&) {
                       // d/dx x Phi(x) = Phi(x) + x phi(x)
                       Tensor cdf = (erf(x * 0.70710678118654752440) + 1) * 0.5;
                       Tensor pdf = exp(x * x * -0.5) * kInvSqrt2Pi;
                       return g * (cdf + x * pdf);
                     });
  return with_grad("GeluBackward0", a, elementwise::unary("gelu_tanh", a, Kind::FloatMath),
                   [](const Tensor& g, const Tensor& x, const Tensor&) {
                     // y = x/2 (1 + tanh(u)), u = c (x + k x^3)
                     Tensor x2 = x * x;
                     Tensor t = tanh((x + x2 * x * kGeluTanhC) * kSqrt2OverPi);
                     Tensor du = (x2 * (3 * kGeluTanhC) + 1) * kSqrt2OverPi;
                     return g * ((t + 1) * 0.5 + x * 0.5 * (1 - t * t) * du);
                   });
}

Tensor silu(const Tensor& a) {
  check_floating("silu", a);
  return with_grad("SiluBackward0", a, elementwise::unary("silu", a, Kind::FloatMath),
                   [](const Tensor& g, const Tensor& x, const Tensor&) {
                     Tensor s = sigmoid(x);
                     return g * s * (x * (1 - s) + 1);
                   });
}
Tensor& silu_(Tensor& self) { return inplace_kernel("silu", self, silu); }

Tensor softplus(const Tensor& a, double beta, double threshold) {
  KILN_AUTOCAST(kFloat32Cuda, softplus, a, beta, threshold);
  check_floating("softplus", a);
  const ScalarType ct = elementwise::compute_dtype("softplus", {a}, Kind::FloatMath);
  Tensor in = to_dtype(detach(a), ct);
  Tensor out = empty(a.sizes(), ct, a.device());
  static const dispatch::Op<void(const Tensor&, const Tensor&, double, double)> k("softplus");
  k(a.device(), out, in, beta, threshold);
  if (autograd::needs_grad({a}))
    autograd::record("SoftplusBackward0", {a}, {out}, {a},
                     [beta, threshold](const autograd::BackwardArgs& g) {
                       const Tensor& x = g.saved[0];
                       Tensor bx = x * beta;
                       Tensor linear = gt(bx, wrapped_scalar(threshold, x.device()));
                       return TensorList{where(linear, g.grad(), g.grad() * sigmoid(bx))};
                     });
  return out;
}

}  // namespace kiln
