#include "kiln/ops/vector_norm.h"

#include <cmath>

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

// |x|^p elementwise (floating x); differentiable any number of times.
Tensor abs_pow(const Tensor& x, double p) {
  Tensor out = empty(x.sizes(), x.dtype(), x.device());
  static const dispatch::Op<void(const Tensor&, const Tensor&, double)> kernel("_abs_pow");
  kernel(x.device(), out, detach(x), p);
  if (autograd::needs_grad({x}))
    autograd::record("AbsPowBackward0", {x}, {out}, {x}, [p](const BackwardArgs& a) {
      const Tensor& in = a.saved[0];
      return TensorList{a.grad() * in * abs_pow(in, p - 2) * Scalar(p)};
    });
  return out;
}

// sign(x) as a constant of x's dtype.
Tensor sign_of(const Tensor& x) {
  Tensor zero = scalar_tensor(0, x.dtype(), x.device());
  return to_dtype(gt(x, zero), x.dtype()) - to_dtype(lt(x, zero), x.dtype());
}

Tensor norm_backward(const Tensor& g, const Tensor& x, const Tensor& n, double p,
                     const Shape& dims, bool keepdim) {
  Tensor gk = reduction::unsqueeze_reduced(g, x.sizes(), dims, keepdim);
  Tensor nk = reduction::unsqueeze_reduced(n, x.sizes(), dims, keepdim);
  Tensor zero = scalar_tensor(0, x.dtype(), x.device());
  Tensor one = scalar_tensor(1, x.dtype(), x.device());
  if (p == 0) return zeros_like(x);
  if (p == 1) return gk * sign_of(x);
  if (std::isinf(p)) {
    // Like amax of |x|: shared evenly among the entries that attain the norm.
    Tensor mask = eq(where(lt(x, zero), neg(x), x), nk);
    Tensor count = sum(mask, dims, true);
    return where(mask, sign_of(x) * gk / count, zero);
  }
  // Zero norms get zero gradient; the safe denominators keep double backward finite.
  Tensor n_zero = eq(nk, zero);
  Tensor n_safe = where(n_zero, one, nk);
  if (p == 2) return where(n_zero, zero, gk * x / n_safe);
  Tensor x_safe = where(eq(x, zero), one, x);
  return where(n_zero, zero, gk * x * abs_pow(x_safe, p - 2) / abs_pow(n_safe, p - 1));
}

}  // namespace

Tensor norm(const Tensor& t, double p, const Shape& dims, bool keepdim,
            std::optional<ScalarType> dtype) {
  KILN_AUTOCAST(kFloat32OptDtypeCuda, norm, t, p, dims, keepdim, dtype);
  Tensor x = dtype ? to_dtype(t, *dtype) : t;
  KILN_CHECK(is_floating(x.dtype()), Error, "[norm] expected a floating point tensor as input, "
             "got ", x.dtype());
  if (std::isinf(p)) reduction::check_nonempty("norm", x, dims);
  const Shape keep = reduction::keepdim_shape("norm", x, dims);
  Tensor out = empty(keep, x.dtype(), x.device());
  static const dispatch::Op<void(const Tensor&, const Tensor&, double)> kernel("norm");
  kernel(x.device(), out, detach(x), p);
  if (!keepdim) out = view(out, reduction::squeeze_reduced(keep, x, dims));
  if (autograd::needs_grad({x}))
    autograd::record("NormBackward1", {x}, {out}, {x, out}, [=](const BackwardArgs& a) {
      return TensorList{norm_backward(a.grad(), a.saved[0], a.saved[1], p, dims, keepdim)};
    });
  return out;
}

}  // namespace kiln
