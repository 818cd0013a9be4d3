#pragma once
// The gradient scaler's two ops (kiln.amp.GradScaler), as PyTorch's. Both read
// and write their state in tensors on the gradients' device, so a training step
// never waits for the device to report whether it overflowed.
#include "kiln/tensor.h"

namespace kiln {

// For every tensor: multiplies it by inv_scale in place and sets found_inf to 1
// when it held an inf or nan. found_inf and inv_scale are one-element float32
// tensors on the tensors' device; the tensors are floating point.
KILN_API void amp_foreach_non_finite_check_and_unscale_(const TensorList& tensors,
                                                        const Tensor& found_inf,
                                                        const Tensor& inv_scale);

// Updates the one-element float32 `scale` and int32 `growth_tracker` in place
// from `found_inf` (see amp::update_scale in kiln/amp_math.h); returns `scale`.
KILN_API Tensor amp_update_scale_(const Tensor& scale, const Tensor& growth_tracker,
                                  const Tensor& found_inf, double growth_factor,
                                  double backoff_factor, int64_t growth_interval);

}  // namespace kiln
