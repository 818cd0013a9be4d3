// CPU kernels of the gradient scaler's ops (front ends in ops/amp.cpp).
#include <atomic>

#include "kiln/amp_math.h"
#include "kiln/dispatch.h"
#include "kiln/dtype_dispatch.h"
#include "kiln/parallel.h"

namespace kiln {
namespace {

void non_finite_check_and_unscale(const TensorList& tensors, const Tensor& found_inf,
                                  const Tensor& inv_scale) {
  const float inv = *inv_scale.data<float>();
  std::atomic<bool> any{false};
  for (const Tensor& t : tensors) {
    visit_floating(t.dtype(), "_amp_foreach_non_finite_check_and_unscale_",
                   [&]<class T>(TypeTag<T>) {
                     using M = OpMath<T>;
                     T* data = t.data<T>();
                     parallel_for(0, t.numel(), kParallelGrain, [&](int64_t b, int64_t e) {
                       bool bad = false;
                       for (int64_t i = b; i < e; ++i)
                         data[i] = static_cast<T>(
                             amp::unscale<M>(static_cast<M>(data[i]), static_cast<M>(inv), bad));
                       if (bad) any.store(true, std::memory_order_relaxed);
                     });
                   });
  }
  if (any.load()) *found_inf.data<float>() = 1.0f;
}

void update_scale(const Tensor& scale, const Tensor& growth_tracker, const Tensor& found_inf,
                  double growth_factor, double backoff_factor, int64_t growth_interval) {
  amp::update_scale(*scale.data<float>(), *growth_tracker.data<int32_t>(),
                    *found_inf.data<float>() != 0.0f, growth_factor, backoff_factor,
                    growth_interval);
}

}  // namespace

KILN_REGISTER_KERNEL(amp_non_finite_check_and_unscale_, CPU, non_finite_check_and_unscale);
KILN_REGISTER_KERNEL(amp_update_scale_, CPU, update_scale);

}  // namespace kiln
