#include "kiln/ops/loss.h"

#include "kiln/autocast.h"
#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/dispatch.h"
#include "kiln/dtype_dispatch.h"
#include "kiln/error.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/range.h"
#include "kiln/ops/reduce.h"
#include "kiln/ops/softmax.h"
#include "kiln/ops/unary.h"
#include "kiln/ops/view.h"

namespace kiln {

using autograd::BackwardArgs;
using loss::Layout;

Reduction parse_reduction(const std::string& reduction, const char* op) {
  if (reduction == "mean") return Reduction::Mean;
  if (reduction == "sum") return Reduction::Sum;
  if (reduction == "none") return Reduction::None;
  throw ValueError(detail::concat("[", op,
                                  "] expected reduction to be 'none', 'mean' or "
                                  "'sum', got '",
                                  reduction, "'"));
}

namespace {

using ForwardKernel = void(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                           const Tensor&, const Tensor&, Layout);
using BackwardKernel = void(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                            const Tensor&, const Tensor&, const Tensor&, Layout);

ScalarType stat_dtype(ScalarType t) {
  return t == ScalarType::Float64 ? ScalarType::Float64 : ScalarType::Float32;
}

struct LossCall {
  Layout L;
  Shape none_shape;  // the output shape of reduction='none'
  Reduction reduction;
  Tensor x, target, weight;  // contiguous, without history (target int64 for indices)
};

// Checks shapes and dtypes, and works out the layout (see Note [Loss layout]).
LossCall prepare(const char* op, const Tensor& input, const Tensor& target, const Tensor& weight,
                 int64_t ignore_index, Reduction reduction, double label_smoothing,
                 bool log_probs) {
  visit_floating(input.dtype(), op, [](auto) {});
  KILN_CHECK(input.dim() >= 1, ValueError, "[", op,
             "] expected input of shape (C), (N, C) or "
             "(N, C, d1, ...), got ",
             input.sizes());
  KILN_CHECK(label_smoothing >= 0 && label_smoothing <= 1, ValueError, "[", op,
             "] expected label_smoothing in [0, 1], got ", label_smoothing);
  const Shape& s = input.sizes();
  const bool batched = input.dim() > 1;
  const int64_t n = batched ? s[0] : 1, c = batched ? s[1] : s[0];
  Shape none_shape;
  int64_t d = 1;
  if (batched) none_shape.push_back(n);
  for (size_t i = 2; i < s.size(); ++i) {
    none_shape.push_back(s[i]);
    d *= s[i];
  }
  const bool prob = !log_probs && target.sizes() == s && target.is_floating_point();
  LossCall call{{n, c, d, ignore_index, label_smoothing, log_probs, prob, op},
                none_shape,
                reduction,
                contiguous(detach(input)),
                Tensor(),
                Tensor()};
  if (prob) {
    KILN_CHECK(target.dtype() == input.dtype(), TypeError, "[", op,
               "] expected probability "
               "target of dtype ",
               dtype_name(input.dtype()), " (the input's), got ", dtype_name(target.dtype()));
    KILN_CHECK(ignore_index == -100, ValueError, "[", op,
               "] ignore_index is not supported for probability targets");
    call.target = contiguous(detach(target));
  } else {
    KILN_CHECK(target.sizes() == none_shape, ValueError, "[", op, "] expected target of shape ",
               none_shape, " for input ", s, ", got ", target.sizes());
    KILN_CHECK(target.dtype() == ScalarType::Int64 || target.dtype() == ScalarType::Int32,
               TypeError, "[", op, "] expected target of dtype int64 (class indices)",
               log_probs ? "" : " or floating of the input's shape (class probabilities)", ", got ",
               dtype_name(target.dtype()), " of shape ", target.sizes());
    call.target = contiguous(to_dtype(detach(target), ScalarType::Int64));
  }
  KILN_CHECK(target.device() == input.device(), ValueError, "[", op, "] expected target on ",
             input.device(), ", got ", target.device());
  if (weight.defined()) {
    KILN_CHECK(weight.sizes() == Shape{c}, ValueError, "[", op, "] expected weight of shape [", c,
               "] for input ", s, ", got ", weight.sizes());
    KILN_CHECK(weight.dtype() == input.dtype(), TypeError, "[", op, "] expected weight of dtype ",
               dtype_name(input.dtype()), " (the input's), got ", dtype_name(weight.dtype()));
    KILN_CHECK(weight.device() == input.device(), ValueError, "[", op, "] expected weight on ",
               input.device(), ", got ", weight.device());
    KILN_CHECK(!(weight.requires_grad() && autograd::is_grad_enabled()), NotImplementedError, "[",
               op, "] the gradient with respect to weight is not implemented");
    call.weight = contiguous(detach(weight));
  }
  return call;
}

struct Forward {
  Tensor out;
  Tensor lse;
  // Of the mean: the summed weights of the rows as a 0-dim tensor in the stat dtype
  // (undefined for the other reductions); kept on the device so no host read waits for it.
  Tensor denominator;
};

Forward run_forward(const LossCall& c) {
  const ScalarType sd = stat_dtype(c.x.dtype());
  const int64_t rows = c.L.N * c.L.D;
  const Device dev = c.x.device();
  Tensor loss_rows = empty({rows}, sd, dev), row_weight = empty({rows}, sd, dev),
         lse = empty({rows}, sd, dev);
  static const dispatch::Op<ForwardKernel> k("loss_forward");
  k(dev, loss_rows, row_weight, lse, c.x, c.target, c.weight, c.L);
  Forward f{Tensor(), lse, Tensor()};
  if (c.reduction == Reduction::None) {
    f.out = to_dtype(view(loss_rows, c.none_shape), c.x.dtype());
    return f;
  }
  f.out = sum(loss_rows);
  if (c.reduction == Reduction::Mean) {
    f.denominator = sum(row_weight);
    f.out = f.out / f.denominator;  // 0/0 (every target ignored) is nan, as in PyTorch
  }
  f.out = to_dtype(f.out, c.x.dtype());
  return f;
}

// Upstream gradient as one coefficient per row (or one for all), in the stat dtype.
Tensor row_coefficients(const Tensor& grad, const LossCall& c, const Tensor& denominator) {
  Tensor g = to_dtype(detach(grad), stat_dtype(c.x.dtype()));
  if (c.reduction == Reduction::Mean) g = g / denominator;
  return contiguous(g);
}

// The fused backward: gradients for input and (probability targets) target.
TensorList run_backward(const LossCall& c, const Tensor& grad, const Tensor& lse,
                        const Tensor& denominator, bool need_target) {
  const Tensor gx = empty(c.x.sizes(), c.x.dtype(), c.x.device());
  const Tensor gt = need_target ? empty(c.x.sizes(), c.x.dtype(), c.x.device()) : Tensor();
  static const dispatch::Op<BackwardKernel> k("loss_backward");
  k(c.x.device(), gx, gt, row_coefficients(grad, c, denominator), c.x, c.target, c.weight, lse,
    c.L);
  return {gx, gt};
}

// Note [Cross-entropy double backward]: the gradient is coef * (A * softmax(x) - B)
// per row, with B[c] = (1-ls) * w[c] * onehot[c] + ls/C * w[c] for a (non-ignored)
// class index, or w[c] * smoothed_y[c] for probabilities, and A = sum_c B[c]. When
// the backward must record (create_graph=True) it is built from differentiable
// kiln ops in this form, so every higher-order gradient is exact.
TensorList composite_backward(const LossCall& c, const Tensor& grad, const Tensor& input,
                              const Tensor& prob_target, const Tensor& denominator,
                              bool need_target) {
  const Shape s3{c.L.N, c.L.C, c.L.D}, row3{c.L.N, 1, c.L.D};
  const double ls = c.L.label_smoothing;
  const Tensor logp = log_softmax(reshape(input, s3), 1);
  const Tensor w3 = c.weight.defined() ? reshape(c.weight, {1, c.L.C, 1}) : Tensor();
  auto weighted = [&](const Tensor& t) { return w3.defined() ? t * w3 : t; };
  Tensor coef = c.reduction == Reduction::None ? reshape(grad, row3) : grad;
  if (c.reduction == Reduction::Mean)  // divided in the stat dtype: a float16 sum could overflow
    coef = to_dtype(to_dtype(coef, denominator.dtype()) / denominator, coef.dtype());
  Tensor b;
  if (c.L.prob_target) {
    b = weighted(reshape(prob_target, s3) * (1 - ls) + ls / static_cast<double>(c.L.C));
  } else {
    const Tensor t3 = reshape(c.target, row3);
    const Tensor classes =
        reshape(arange(0, c.L.C, 1, ScalarType::Int64, input.device()), {1, c.L.C, 1});
    const Tensor onehot = to_dtype(eq(classes, t3), input.dtype());  // ignored rows: all 0
    const Tensor valid = to_dtype(
        ne(t3, full({}, c.L.ignore_index, ScalarType::Int64, input.device())), input.dtype());
    b = weighted(onehot * (1 - ls) + valid * (ls / static_cast<double>(c.L.C)));
  }
  const Tensor gx = reshape(coef * (sum(b, {1}, true) * exp(logp) - b), input.sizes());
  const Tensor gt =
      need_target ? reshape(weighted(logp) * coef * (ls - 1), input.sizes()) : Tensor();
  return {gx, gt};
}

}  // namespace

Tensor cross_entropy(const Tensor& input, const Tensor& target, const Tensor& weight,
                     int64_t ignore_index, Reduction reduction, double label_smoothing) {
  KILN_AUTOCAST(kFloat32, cross_entropy, input, target, weight, ignore_index, reduction,
                label_smoothing);
  const LossCall c = prepare("cross_entropy", input, target, weight, ignore_index, reduction,
                             label_smoothing, /*log_probs=*/false);
  const Forward f = run_forward(c);
  const Tensor prob_target = c.L.prob_target ? target : Tensor();
  if (autograd::needs_grad({input, prob_target})) {
    // Saving the inputs checks them for in-place changes before backward reads them.
    autograd::record(
        "CrossEntropyLossBackward0", {input, prob_target}, {f.out}, {input, prob_target},
        [c, lse = f.lse, denom = f.denominator](const BackwardArgs& a) {
          if (autograd::needs_grad({a.grad(), a.saved[0], a.saved[1]}))
            return composite_backward(c, a.grad(), a.saved[0], a.saved[1], denom, a.needs(1));
          return run_backward(c, a.grad(), lse, denom, a.needs(1));
        });
  }
  return f.out;
}

Tensor nll_loss(const Tensor& input, const Tensor& target, const Tensor& weight,
                int64_t ignore_index, Reduction reduction) {
  KILN_AUTOCAST(kFloat32, nll_loss, input, target, weight, ignore_index, reduction);
  const LossCall c = prepare("nll_loss", input, target, weight, ignore_index, reduction, 0.0,
                             /*log_probs=*/true);
  const Forward f = run_forward(c);
  if (autograd::needs_grad({input})) {
    autograd::record(
        "NllLossBackward0", {input}, {f.out}, {},
        [c, lse = f.lse, denom = f.denominator, target, weight, ignore_index,
         reduction](const BackwardArgs& a) {
          const Tensor gx = run_backward(c, a.grad(), lse, denom, false)[0];
          if (autograd::needs_grad({a.grad()})) {
            // gx is linear in the upstream gradient, with nll_loss as its adjoint.
            autograd::record(
                "NllLossBackwardBackward0", {a.grad()}, {gx}, {}, [=](const BackwardArgs& b) {
                  return TensorList{nll_loss(b.grad(), target, weight, ignore_index, reduction)};
                });
          }
          return TensorList{gx};
        });
  }
  return f.out;
}

}  // namespace kiln
