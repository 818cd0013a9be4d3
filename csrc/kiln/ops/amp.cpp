#include "kiln/ops/amp.h"

#include "kiln/autograd/grad_mode.h"
#include "kiln/dispatch.h"
#include "kiln/error.h"
#include "kiln/ops/copy.h"

namespace kiln {
namespace {

void check_one_element(const char* op, const char* name, const Tensor& t, ScalarType dtype,
                       Device device) {
  KILN_CHECK(t.defined() && t.numel() == 1 && t.dtype() == dtype, ValueError, "[", op, "] ", name,
             " must be a one-element ", dtype, " tensor");
  KILN_CHECK(t.device() == device, ValueError, "[", op, "] ", name, " is on ", t.device(),
             " but the other tensors are on ", device);
}

}  // namespace

void amp_foreach_non_finite_check_and_unscale_(const TensorList& tensors, const Tensor& found_inf,
                                               const Tensor& inv_scale) {
  static constexpr const char* op = "_amp_foreach_non_finite_check_and_unscale_";
  autograd::NoGradGuard no_grad;  // gradients are data here, not part of a graph
  KILN_CHECK(found_inf.defined(), ValueError, "[", op, "] found_inf is None");
  const Device device = found_inf.device();
  check_one_element(op, "found_inf", found_inf, ScalarType::Float32, device);
  check_one_element(op, "inv_scale", inv_scale, ScalarType::Float32, device);
  // The kernel sees contiguous tensors; others are unscaled in a copy written back.
  TensorList dense;
  dense.reserve(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    KILN_CHECK(t.defined() && t.is_floating_point(), TypeError, "[", op, "] tensor ", i,
               " must be a floating point tensor", t.defined() ? ", got " : "",
               t.defined() ? dtype_name(t.dtype()) : "");
    KILN_CHECK(t.device() == device, ValueError, "[", op, "] tensor ", i, " is on ", t.device(),
               " but found_inf is on ", device);
    dense.push_back(t.is_contiguous() ? t : contiguous(t));
  }
  static const dispatch::Op<void(const TensorList&, const Tensor&, const Tensor&)> kernel(
      "amp_non_finite_check_and_unscale_");
  kernel(device, dense, found_inf, inv_scale);
  found_inf.bump_version();
  for (size_t i = 0; i < tensors.size(); ++i) {
    Tensor t = tensors[i];
    if (dense[i].is_same(t))
      t.bump_version();
    else
      copy_(t, dense[i]);
  }
}

Tensor amp_update_scale_(const Tensor& scale, const Tensor& growth_tracker, const Tensor& found_inf,
                         double growth_factor, double backoff_factor, int64_t growth_interval) {
  static constexpr const char* op = "_amp_update_scale_";
  KILN_CHECK(scale.defined(), ValueError, "[", op, "] scale is None");
  const Device device = scale.device();
  check_one_element(op, "scale", scale, ScalarType::Float32, device);
  check_one_element(op, "growth_tracker", growth_tracker, ScalarType::Int32, device);
  check_one_element(op, "found_inf", found_inf, ScalarType::Float32, device);
  KILN_CHECK(growth_interval > 0, ValueError, "[", op, "] growth_interval must be positive, got ",
             growth_interval);
  static const dispatch::Op<void(const Tensor&, const Tensor&, const Tensor&, double, double,
                                 int64_t)>
      kernel("amp_update_scale_");
  kernel(device, scale, growth_tracker, found_inf, growth_factor, backoff_factor, growth_interval);
  scale.bump_version();
  growth_tracker.bump_version();
  return scale;
}

}  // namespace kiln
