#include "kiln/ops/softmax.h"

#include "kiln/autocast.h"
#include "kiln/autograd/node.h"
#include "kiln/dispatch.h"
#include "kiln/error.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/reduce.h"
#include "kiln/ops/unary.h"
#include "kiln/ops/view.h"

namespace kiln {

using autograd::BackwardArgs;

namespace {

using SoftmaxKernel = void(const Tensor&, const Tensor&, int64_t);

// The input in the dtype the op computes in: `dtype` if given, else t's (floating only).
Tensor softmax_input(const char* op, const Tensor& t, std::optional<ScalarType> dtype) {
  const ScalarType dt = dtype ? *dtype : t.dtype();
  KILN_CHECK(is_floating(dt), Error, "[", op, "] expected a floating point input (or a floating "
             "dtype= argument), got ", dt);
  return to_dtype(t, dt);
}

Tensor run_softmax(const dispatch::Op<SoftmaxKernel>& kernel, const Tensor& x, int64_t d) {
  Tensor out = empty(x.sizes(), x.dtype(), x.device());
  kernel(x.device(), out, contiguous(detach(x)), d);
  return out;
}

}  // namespace

// Over the last dim of same-dtype inputs it is one fused kernel whose own
// backward is written with kiln ops; otherwise it is composed of kiln ops.
Tensor softmax_backward(const Tensor& g, const Tensor& y, int64_t dim, bool log) {
  const int64_t d = wrap_dim(dim, y.dim(), "softmax_backward");
  const bool fused = (y.dim() == 0 || d == y.dim() - 1) && g.dtype() == y.dtype() &&
                     g.sizes() == y.sizes();
  if (!fused) return log ? g - exp(y) * sum(g, {d}, true) : y * (g - sum(g * y, {d}, true));
  Tensor out = empty(y.sizes(), y.dtype(), y.device());
  static const dispatch::Op<void(const Tensor&, const Tensor&, const Tensor&)> k_soft(
      "softmax_backward"), k_log("log_softmax_backward");
  (log ? k_log : k_soft)(y.device(), out, contiguous(detach(g)), contiguous(detach(y)));
  if (autograd::needs_grad({g, y}))
    autograd::record(log ? "LogSoftmaxBackwardDataBackward0" : "SoftmaxBackwardDataBackward0",
                     {g, y}, {out}, {g, y}, [d, log](const BackwardArgs& a) {
      // out = y (g - s), s = sum(g y):       dg = same op on gg;  dy = gg (g - s) - g sum(gg y)
      // out = g - exp(y) S, S = sum(g):      dg = gg - sum(gg exp(y));  dy = -gg exp(y) S
      const Tensor& gg = a.grad();
      const Tensor& g = a.saved[0];
      const Tensor& y = a.saved[1];
      if (log) {
        Tensor ey = exp(y);
        return TensorList{a.needs(0) ? gg - sum(gg * ey, {d}, true) : Tensor(),
                          a.needs(1) ? neg(gg * ey * sum(g, {d}, true)) : Tensor()};
      }
      return TensorList{a.needs(0) ? softmax_backward(gg, y, d, false) : Tensor(),
                        a.needs(1) ? gg * (g - sum(g * y, {d}, true)) - g * sum(gg * y, {d}, true)
                                   : Tensor()};
    });
  return out;
}

Tensor softmax(const Tensor& t, int64_t dim, std::optional<ScalarType> dtype) {
  KILN_AUTOCAST(kFloat32OptDtypeCuda, softmax, t, dim, dtype);
  const int64_t d = wrap_dim(dim, t.dim(), "softmax");
  Tensor x = softmax_input("softmax", t, dtype);
  static const dispatch::Op<SoftmaxKernel> kernel("softmax");
  Tensor out = run_softmax(kernel, x, d);
  if (autograd::needs_grad({x}))
    autograd::record("SoftmaxBackward0", {x}, {out}, {out}, [d](const BackwardArgs& a) {
      return TensorList{softmax_backward(a.grad(), a.saved[0], d, false)};
    });
  return out;
}

Tensor log_softmax(const Tensor& t, int64_t dim, std::optional<ScalarType> dtype) {
  KILN_AUTOCAST(kFloat32OptDtypeCuda, log_softmax, t, dim, dtype);
  const int64_t d = wrap_dim(dim, t.dim(), "log_softmax");
  Tensor x = softmax_input("log_softmax", t, dtype);
  static const dispatch::Op<SoftmaxKernel> kernel("log_softmax");
  Tensor out = run_softmax(kernel, x, d);
  if (autograd::needs_grad({x}))
    autograd::record("LogSoftmaxBackward0", {x}, {out}, {out}, [d](const BackwardArgs& a) {
      return TensorList{softmax_backward(a.grad(), a.saved[0], d, true)};
    });
  return out;
}

Tensor logsumexp(const Tensor& t, const Shape& dims, bool keepdim) {
  KILN_AUTOCAST(kFloat32Cuda, logsumexp, t, dims, keepdim);
  Tensor x = is_floating(t.dtype()) ? t : to_dtype(t, default_float_dtype());
  const Shape keep = reduction::keepdim_shape("logsumexp", x, dims);
  Tensor out = empty(keep, x.dtype(), x.device());
  if (dims.size() == 1 || x.dim() <= 1) {
    // One dim: the fused softmax-style kernel (two vectorized passes over each row).
    static const dispatch::Op<SoftmaxKernel> kernel("logsumexp_dim");
    kernel(x.device(), out, contiguous(detach(x)), dims.empty() ? 0 : wrap_dim(dims[0], x.dim(), "logsumexp"));
  } else {
    static const dispatch::Op<void(const Tensor&, const Tensor&)> kernel("logsumexp");
    kernel(x.device(), out, detach(x));
  }
  if (!keepdim) out = view(out, reduction::squeeze_reduced(keep, x, dims));
  if (autograd::needs_grad({x}))
    autograd::record("LogsumexpBackward0", {x}, {out}, {x, out}, [=](const BackwardArgs& a) {
      const Tensor& in = a.saved[0];
      const Shape& s = in.sizes();
      Tensor g = reduction::unsqueeze_reduced(a.grad(), s, dims, keepdim);
      return TensorList{g * exp(in - reduction::unsqueeze_reduced(a.saved[1], s, dims, keepdim))};
    });
  return out;
}

}  // namespace kiln
