#include "kiln/ops/moments.h"

#include "kiln/autograd/node.h"
#include "kiln/dispatch.h"
#include "kiln/error.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/unary.h"
#include "kiln/ops/reduce.h"
#include "kiln/ops/view.h"

namespace kiln {

using autograd::BackwardArgs;

namespace {

// One pass of the var kernel: (var or std, mean), un-kept unless keepdim. No autograd.
std::pair<Tensor, Tensor> moments(const char* op, const Tensor& t, const Shape& dims,
                                  double correction, bool keepdim, bool take_sqrt,
                                  bool want_mean) {
  KILN_CHECK(is_floating(t.dtype()), Error, "[", op,
             "] std and var only support floating point dtypes, got ", t.dtype());
  const Shape keep = reduction::keepdim_shape(op, t, dims);
  Tensor v = empty(keep, t.dtype(), t.device());
  Tensor m = want_mean ? empty(keep, t.dtype(), t.device()) : Tensor();
  static const dispatch::Op<void(const Tensor&, const Tensor&, const Tensor&, double, bool)>
      kernel("var");
  kernel(t.device(), v, m, t, correction, take_sqrt);
  if (!keepdim) {
    const Shape shape = reduction::squeeze_reduced(keep, t, dims);
    v = view(v, shape);
    if (want_mean) m = view(m, shape);
  }
  return {v, m};
}

// d var / d x = 2 (x - mean) / (N - correction), with the mean recomputed by kiln ops
// so the formula is itself differentiable.
Tensor var_backward(const Tensor& g, const Tensor& x, const Shape& dims, double correction,
                    bool keepdim) {
  const double divisor = std::max(0.0, static_cast<double>(reduction::reduced_count(x, dims)) -
                                           correction);
  Tensor gk = reduction::unsqueeze_reduced(g, x.sizes(), dims, keepdim);
  return gk * (x - mean(x, dims, true)) * Scalar(2.0 / divisor);
}

// d std = d var / (2 std); zero where std is zero, as in PyTorch.
Tensor std_backward(const Tensor& g, const Tensor& s, const Tensor& x, const Shape& dims,
                    double correction, bool keepdim) {
  Tensor zero = zeros({}, s.dtype(), s.device());
  Tensor gv = where(eq(s, zero), zero, g / (s * Scalar(2)));
  return var_backward(gv, x, dims, correction, keepdim);
}

Tensor mean_backward(const Tensor& g, const Tensor& x, const Shape& dims, bool keepdim) {
  Tensor gk = reduction::unsqueeze_reduced(g, x.sizes(), dims, keepdim);
  return expand(gk, x.sizes()) / Scalar(reduction::reduced_count(x, dims));
}

}  // namespace

Tensor var(const Tensor& t, const Shape& dims, double correction, bool keepdim) {
  Tensor out = moments("var", t, dims, correction, keepdim, false, false).first;
  if (autograd::needs_grad({t}))
    autograd::record("VarBackward0", {t}, {out}, {t}, [=](const BackwardArgs& a) {
      return TensorList{var_backward(a.grad(), a.saved[0], dims, correction, keepdim)};
    });
  return out;
}

Tensor std(const Tensor& t, const Shape& dims, double correction, bool keepdim) {
  Tensor out = moments("std", t, dims, correction, keepdim, true, false).first;
  if (autograd::needs_grad({t}))
    autograd::record("StdBackward0", {t}, {out}, {t, out}, [=](const BackwardArgs& a) {
      return TensorList{std_backward(a.grad(), a.saved[1], a.saved[0], dims, correction, keepdim)};
    });
  return out;
}

std::pair<Tensor, Tensor> var_mean(const Tensor& t, const Shape& dims, double correction,
                                   bool keepdim) {
  auto [v, m] = moments("var_mean", t, dims, correction, keepdim, false, true);
  if (autograd::needs_grad({t}))
    autograd::record("VarMeanBackward0", {t}, {v, m}, {t}, [=](const BackwardArgs& a) {
      const Tensor& x = a.saved[0];
      return TensorList{var_backward(a.grad(0), x, dims, correction, keepdim) +
                        mean_backward(a.grad(1), x, dims, keepdim)};
    });
  return {v, m};
}

std::pair<Tensor, Tensor> std_mean(const Tensor& t, const Shape& dims, double correction,
                                   bool keepdim) {
  auto [s, m] = moments("std_mean", t, dims, correction, keepdim, true, true);
  if (autograd::needs_grad({t}))
    autograd::record("StdMeanBackward0", {t}, {s, m}, {t, s}, [=](const BackwardArgs& a) {
      const Tensor& x = a.saved[0];
      return TensorList{std_backward(a.grad(0), a.saved[1], x, dims, correction, keepdim) +
                        mean_backward(a.grad(1), x, dims, keepdim)};
    });
  return {s, m};
}

}  // namespace kiln
