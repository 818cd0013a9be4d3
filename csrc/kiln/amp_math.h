#pragma once
// Per-element math of the gradient scaler's ops, shared by the CPU and CUDA kernels.
#include <cmath>
#include <cstdint>

#include "kiln/functors.h"

namespace kiln::amp {

// One gradient element unscaled: v * inv_scale (skipped when inv_scale is 1, as
// PyTorch does); `non_finite` is set when v is inf or nan.
template <class M>
KILN_HD M unscale(M v, M inv_scale, bool& non_finite) {
  if (!std::isfinite(v)) non_finite = true;
  return inv_scale == M(1) ? v : v * inv_scale;
}

// The loss scale after one step (PyTorch's _amp_update_scale_): back off and
// restart the count on inf/nan, else grow after growth_interval clean steps
// (unless growing would overflow float32).
KILN_HD inline void update_scale(float& scale, int32_t& growth_tracker, bool found_inf,
                                 double growth_factor, double backoff_factor,
                                 int64_t growth_interval) {
  if (found_inf) {
    scale = static_cast<float>(scale * backoff_factor);
    growth_tracker = 0;
    return;
  }
  const int32_t successful = growth_tracker + 1;
  if (successful == growth_interval) {
    const float grown = static_cast<float>(scale * growth_factor);
    if (std::isfinite(grown)) scale = grown;
    growth_tracker = 0;
  } else {
    growth_tracker = successful;
  }
}

}  // namespace kiln::amp
