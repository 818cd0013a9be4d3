#include "kiln/ops/scan.h"

#include "kiln/autocast.h"
#include "kiln/autograd/node.h"
#include "kiln/dispatch.h"
#include "kiln/error.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/reduce.h"
#include "kiln/ops/unary.h"

namespace kiln {

using autograd::BackwardArgs;

namespace {

using ScanKernel = void(const Tensor&, const Tensor&, int64_t, bool);

ScalarType scan_dtype(const Tensor& t, std::optional<ScalarType> dtype) {
  return dtype ? *dtype : (is_floating(t.dtype()) ? t.dtype() : ScalarType::Int64);
}

// The scan kernel on a contiguous copy of x, without autograd.
Tensor run_scan(bool is_prod, const Tensor& x, int64_t d, bool reverse) {
  Tensor out = empty(x.sizes(), x.dtype(), x.device());
  static const dispatch::Op<ScanKernel> k_sum("cumsum"), k_prod("cumprod");
  (is_prod ? k_prod : k_sum)(x.device(), out, contiguous(detach(x)), d, reverse);
  return out;
}

// cumsum forwards or backwards along d; each direction's gradient is the other direction.
Tensor directed_cumsum(const Tensor& x, int64_t d, bool reverse) {
  Tensor out = run_scan(false, x, d, reverse);
  if (autograd::needs_grad({x}))
    autograd::record("CumsumBackward0", {x}, {out}, {}, [=](const BackwardArgs& a) {
      return TensorList{directed_cumsum(a.grad(), d, !reverse)};
    });
  return out;
}

}  // namespace

Tensor cumsum(const Tensor& t, int64_t dim, std::optional<ScalarType> dtype) {
  KILN_AUTOCAST(kFloat32OptDtypeCuda, cumsum, t, dim, dtype);
  const int64_t d = wrap_dim(dim, t.dim(), "cumsum");
  return directed_cumsum(to_dtype(t, scan_dtype(t, dtype)), d, false);
}

Tensor cumprod(const Tensor& t, int64_t dim, std::optional<ScalarType> dtype) {
  KILN_AUTOCAST(kFloat32OptDtypeCuda, cumprod, t, dim, dtype);
  const int64_t d = wrap_dim(dim, t.dim(), "cumprod");
  Tensor x = to_dtype(t, scan_dtype(t, dtype));
  Tensor out = run_scan(true, x, d, false);
  if (autograd::needs_grad({x}))
    autograd::record("CumprodBackward0", {x}, {out}, {x, out}, [d](const BackwardArgs& a) {
      // dL/dx_k = sum_{j>=k} g_j prod_{i<=j, i!=k} x_i. Before the first zero of a slice that is
      // revcumsum(g y)_k / x_k; at the first zero it is revcumsum(g y')_k where y' is the cumprod
      // with that zero replaced by 1; after it, 0.
      const Tensor& x = a.saved[0];
      const Tensor& y = a.saved[1];
      const Tensor& g = a.grad();
      Tensor zero = scalar_tensor(0, x.dtype(), x.device());
      Tensor one = scalar_tensor(1, x.dtype(), x.device());
      Tensor z = eq(x, zero);
      // Without zeros the first formula alone is right. Asking costs a host read, worth it
      // on the CPU only; on a device the general formula below also covers that case.
      if (x.device().is_cpu() && !item(any(z)).to<bool>())
        return TensorList{directed_cumsum(g * y, d, true) / x};
      Tensor zeros_so_far = run_scan(false, to_dtype(z, ScalarType::Int64), d, false);
      Tensor before = eq(zeros_so_far, scalar_tensor(0, ScalarType::Int64, x.device()));
      Tensor first = mul(z, eq(zeros_so_far, scalar_tensor(1, ScalarType::Int64, x.device())));
      Tensor at_first = directed_cumsum(g * cumprod(where(first, one, x), d), d, true);
      Tensor before_first = directed_cumsum(g * y, d, true) / where(before, x, one);
      return TensorList{where(before, before_first, where(first, at_first, zero))};
    });
  return out;
}

}  // namespace kiln
