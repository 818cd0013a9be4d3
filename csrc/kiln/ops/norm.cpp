#include "kiln/ops/norm.h"

#include <limits>
#include <string>

#include "kiln/autocast.h"
#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/dispatch.h"
#include "kiln/dtype_dispatch.h"
#include "kiln/error.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/reduce.h"
#include "kiln/ops/view.h"

namespace kiln {

using autograd::BackwardArgs;
using normalization::Layout;

namespace {

using ForwardKernel = void(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                           const Tensor&, const Tensor&, const Tensor&, Layout, double, bool, bool);
using BackwardKernel = void(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                            const Tensor&, const Tensor&, const Tensor&, const Tensor&, Layout,
                            bool, bool);

// Statistics are kept in float for the 16-bit floats and float32, double for float64.
ScalarType stat_dtype(ScalarType t) {
  return t == ScalarType::Float64 ? ScalarType::Float64 : ScalarType::Float32;
}

void check_param(const char* op, const char* name, const Tensor& p, const Tensor& input,
                 const Shape& expected) {
  if (!p.defined()) return;
  KILN_CHECK(p.sizes() == expected, ValueError, "[", op, "] expected ", name, " of shape ",
             expected, " for input of shape ", input.sizes(), ", got ", p.sizes());
  KILN_CHECK(p.dtype() == input.dtype(), TypeError, "[", op, "] expected ", name, " of dtype ",
             dtype_name(input.dtype()), " (the input's), got ", dtype_name(p.dtype()));
  KILN_CHECK(p.device() == input.device(), ValueError, "[", op, "] expected ", name, " on ",
             input.device(), ", got ", p.device());
}

Tensor contiguous_data(const Tensor& t) { return t.defined() ? contiguous(detach(t)) : Tensor(); }

// 1 / sqrt(var + eps), differentiable to any order (its backward uses its output).
Tensor rsqrt_eps(const Tensor& var, double eps) {
  const Tensor v = contiguous(detach(var));
  Tensor out = empty(v.sizes(), v.dtype(), v.device());
  static const dispatch::Op<void(const Tensor&, const Tensor&, double)> k("norm_rsqrt");
  k(v.device(), out, v, eps);
  if (autograd::needs_grad({var})) {
    autograd::record("RsqrtBackward0", {var}, {out}, {out}, [](const BackwardArgs& a) {
      const Tensor& y = a.saved[0];
      return TensorList{a.grad() * y * y * y * -0.5};
    });
  }
  return out;
}

// Note [Norm double backward]: the first-order backward as a fused kernel is fast but
// not differentiable. When the backward itself must record (create_graph=True), the
// same formulas are built from differentiable kiln ops instead, recomputing the
// statistics from the input, so every higher-order gradient is exact. The [B,R,K]
// layout is viewed as [B, R/P, P, K/S, S], where the weight is [1, 1, P, K/S, 1].
TensorList composite_backward(const Tensor& grad, const Tensor& input, const Tensor& weight,
                              const Tensor& given_mean, const Tensor& given_rstd,
                              const Shape& param_shape, Layout L, double eps, bool rms,
                              bool given_stats) {
  const Shape s5{L.B, L.R / L.P, L.P, L.K / L.S, L.S}, stat5{1, L.R / L.P, L.P, 1, 1};
  const Shape p5{1, 1, L.P, L.K / L.S, 1}, dims{0, 3, 4};
  const double n = static_cast<double>(L.B * L.K);
  const Tensor x = reshape(input, s5), g = reshape(grad, s5);
  Tensor mean, rstd;
  if (given_stats) {
    mean = reshape(to_dtype(given_mean, input.dtype()), stat5);
    rstd = reshape(to_dtype(given_rstd, input.dtype()), stat5);
  } else {
    if (!rms) mean = sum(x, dims, true) / n;
    const Tensor xc = rms ? x : x - mean;
    rstd = rsqrt_eps(sum(xc * xc, dims, true) / n, eps);
  }
  const Tensor xhat = (rms ? x : x - mean) * rstd;
  const Tensor gw = weight.defined() ? g * reshape(weight, p5) : g;
  Tensor gx;
  if (given_stats) {
    gx = gw * rstd;
  } else {
    Tensor t = gw - xhat * (sum(gw * xhat, dims, true) / n);
    if (!rms) t = t - sum(gw, dims, true) / n;
    gx = rstd * t;
  }
  return {reshape(gx, input.sizes()), reshape(sum_to(g * xhat, p5), param_shape),
          reshape(sum_to(g, p5), param_shape)};
}

// The first-order backward: the fused kernel, or the composite when it must record.
TensorList norm_backward(const Tensor& grad, const Tensor& input, const Tensor& mean,
                         const Tensor& rstd, const Tensor& weight, const Shape& param_shape,
                         Layout L, double eps, bool rms, bool given_stats, bool need_x, bool need_w,
                         bool need_b) {
  if (autograd::needs_grad({grad, input, weight})) {
    TensorList g =
        composite_backward(grad, input, weight, mean, rstd, param_shape, L, eps, rms, given_stats);
    return {need_x ? g[0] : Tensor(), need_w ? g[1] : Tensor(), need_b ? g[2] : Tensor()};
  }
  const Tensor x = contiguous_data(input), g = contiguous_data(grad);
  const Tensor gx = need_x ? empty(input.sizes(), input.dtype(), input.device()) : Tensor();
  const Tensor gw = need_w ? empty(param_shape, input.dtype(), input.device()) : Tensor();
  const Tensor gb = need_b ? empty(param_shape, input.dtype(), input.device()) : Tensor();
  static const dispatch::Op<BackwardKernel> k("norm_backward");
  k(input.device(), gx, gw, gb, g, x, mean, rstd, contiguous_data(weight), L, rms, given_stats);
  return {gx, gw, gb};
}

struct NormCall {
  const char* op;
  const char* node;
  Layout layout;
  Shape param_shape;  // of weight and bias
  double eps;
  bool rms = false;
  Tensor given_mean = Tensor(), given_var = Tensor();  // batch norm in eval mode
  // Batch norm in training mode: receive the batch mean and biased variance.
  Tensor* mean_out = nullptr;
  Tensor* var_out = nullptr;
};

// Checks weight/bias, runs the fused forward and records its backward.
// PyTorch's mixed-type norms: a 16-bit input may come with float32 params (a
// float32 model under autocast); they are cast to the input's dtype, and their
// gradients back to float32 by the cast's backward.
Tensor param_for(const Tensor& p, const Tensor& input) {
  const bool half_input =
      input.dtype() == ScalarType::Float16 || input.dtype() == ScalarType::BFloat16;
  return p.defined() && half_input && p.dtype() == ScalarType::Float32 ? to_dtype(p, input.dtype())
                                                                       : p;
}

Tensor run_norm(const NormCall& c, const Tensor& input, const Tensor& weight_in,
                const Tensor& bias_in) {
  visit_floating(input.dtype(), c.op, [](auto) {});
  const Tensor weight = param_for(weight_in, input), bias = param_for(bias_in, input);
  check_param(c.op, "weight", weight, input, c.param_shape);
  check_param(c.op, "bias", bias, input, c.param_shape);
  const ScalarType sd = stat_dtype(input.dtype());
  const Device dev = input.device();
  const bool given = c.given_mean.defined();
  // Given statistics are copied: the caller may update its running stats before backward.
  const Tensor mean =
      given ? to_dtype(detach(c.given_mean), sd, /*copy=*/true) : empty({c.layout.R}, sd, dev);
  const Tensor var = given ? to_dtype(detach(c.given_var), sd, /*copy=*/true)
                           : (c.var_out ? empty({c.layout.R}, sd, dev) : Tensor());
  const Tensor rstd = empty({c.layout.R}, sd, dev);
  Tensor out = empty(input.sizes(), input.dtype(), dev);
  static const dispatch::Op<ForwardKernel> k("norm_forward");
  k(dev, out, mean, rstd, var, contiguous_data(input), contiguous_data(weight),
    contiguous_data(bias), c.layout, c.eps, c.rms, given);
  if (c.var_out) {
    *c.mean_out = mean;
    *c.var_out = var;
  }
  if (autograd::needs_grad({input, weight, bias})) {
    autograd::record(c.node, {input, weight, bias}, {out}, {input, weight},
                     [L = c.layout, shape = c.param_shape, eps = c.eps, rms = c.rms, mean, rstd,
                      given](const BackwardArgs& a) {
                       return norm_backward(a.grad(), a.saved[0], mean, rstd, a.saved[1], shape, L,
                                            eps, rms, given, a.needs(0), a.needs(1), a.needs(2));
                     });
  }
  return out;
}

// Product of sizes[begin, end).
int64_t prod(const Shape& s, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end; ++i) p *= s[i];
  return p;
}

Layout last_dims_layout(const char* op, const Tensor& input, const Shape& normalized_shape) {
  const size_t nd = input.sizes().size(), nn = normalized_shape.size();
  KILN_CHECK(nn >= 1, ValueError, "[", op,
             "] expected normalized_shape to have at least one dim, got ", normalized_shape);
  bool ok = nd >= nn;
  for (size_t i = 0; ok && i < nn; ++i) ok = input.sizes()[nd - nn + i] == normalized_shape[i];
  KILN_CHECK(ok, ValueError, "[", op, "] expected input with shape [*, ",
             detail::concat(normalized_shape).substr(1), " (normalized_shape ", normalized_shape,
             "), got ", input.sizes());
  return {1, prod(input.sizes(), 0, nd - nn), prod(normalized_shape, 0, nn), 1, 1};
}

// (N, C, *) inputs: N, C and the spatial size.
void batch_dims(const char* op, const Tensor& input, int64_t& n, int64_t& c, int64_t& spatial) {
  KILN_CHECK(input.dim() >= 2, ValueError, "[", op, "] expected input of shape (N, C, *), got ",
             input.sizes());
  n = input.sizes()[0];
  c = input.sizes()[1];
  spatial = prod(input.sizes(), 2, input.sizes().size());
}

// rms_norm's default eps: the machine epsilon of the type the statistics are
// computed in (float32 for 16-bit inputs, as in PyTorch), not of the input's.
double machine_eps(ScalarType t) {
  return t == ScalarType::Float64 ? std::numeric_limits<double>::epsilon()
                                  : std::numeric_limits<float>::epsilon();
}

}  // namespace

Tensor layer_norm(const Tensor& input, const Shape& normalized_shape, const Tensor& weight,
                  const Tensor& bias, double eps) {
  KILN_AUTOCAST(kFloat32Cuda, layer_norm, input, normalized_shape, weight, bias, eps);
  const Layout L = last_dims_layout("layer_norm", input, normalized_shape);
  return run_norm({"layer_norm", "NativeLayerNormBackward0", L, normalized_shape, eps}, input,
                  weight, bias);
}

Tensor rms_norm(const Tensor& input, const Shape& normalized_shape, const Tensor& weight,
                std::optional<double> eps) {
  KILN_AUTOCAST(kFloat32Cuda, rms_norm, input, normalized_shape, weight, eps);
  const Layout L = last_dims_layout("rms_norm", input, normalized_shape);
  NormCall c{"rms_norm", "RmsNormBackward0", L, normalized_shape,
             eps ? *eps : machine_eps(input.dtype())};
  c.rms = true;
  return run_norm(c, input, weight, Tensor());
}

Tensor group_norm(const Tensor& input, int64_t num_groups, const Tensor& weight, const Tensor& bias,
                  double eps) {
  KILN_AUTOCAST(kFloat32Cuda, group_norm, input, num_groups, weight, bias, eps);
  int64_t n, c, spatial;
  batch_dims("group_norm", input, n, c, spatial);
  KILN_CHECK(num_groups > 0 && c % num_groups == 0, ValueError, "[group_norm] expected the ", c,
             " channels of input ", input.sizes(), " to divide into num_groups=", num_groups);
  const Layout L{1, n * num_groups, c / num_groups * spatial, num_groups,
                 std::max<int64_t>(spatial, 1)};
  return run_norm({"group_norm", "NativeGroupNormBackward0", L, {c}, eps}, input, weight, bias);
}

Tensor batch_norm(const Tensor& input, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum,
                  double eps) {
  int64_t n, c, spatial;
  batch_dims("batch_norm", input, n, c, spatial);
  KILN_CHECK(running_mean.defined() == running_var.defined(), ValueError,
             "[batch_norm] expected both running_mean and running_var, or neither");
  for (const Tensor* r : {&running_mean, &running_var}) {
    if (!r->defined()) continue;
    KILN_CHECK(r->sizes() == Shape{c}, ValueError,
               "[batch_norm] expected running stats of "
               "shape [",
               c, "] for input of shape ", input.sizes(), ", got ", r->sizes());
    KILN_CHECK(r->device() == input.device(), ValueError, "[batch_norm] expected running stats on ",
               input.device(), ", got ", r->device());
    KILN_CHECK(r->is_floating_point(), TypeError,
               "[batch_norm] expected floating running "
               "stats, got ",
               dtype_name(r->dtype()));
  }
  const Layout L{n, c, spatial, std::max<int64_t>(c, 1), std::max<int64_t>(spatial, 1)};
  NormCall call{"batch_norm", "NativeBatchNormBackward0", L, {c}, eps};
  if (!training) {
    KILN_CHECK(running_mean.defined(), ValueError,
               "[batch_norm] running_mean and running_var "
               "must be defined in evaluation mode");
    call.given_mean = running_mean;
    call.given_var = running_var;
    return run_norm(call, input, weight, bias);
  }
  KILN_CHECK(n * spatial > 1, ValueError,
             "[batch_norm] expected more than 1 value per channel "
             "when training, got input of shape ",
             input.sizes());
  Tensor mean, var;
  call.mean_out = &mean;
  call.var_out = &var;
  Tensor out = run_norm(call, input, weight, bias);
  if (running_mean.defined()) {
    autograd::NoGradGuard no_grad;
    const double unbias = static_cast<double>(n * spatial) / static_cast<double>(n * spatial - 1);
    Tensor rm = running_mean, rv = running_var;
    copy_(rm, running_mean * (1 - momentum) + mean * momentum);
    copy_(rv, running_var * (1 - momentum) + var * (momentum * unbias));
  }
  return out;
}

}  // namespace kiln
