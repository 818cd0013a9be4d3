#pragma once
#include <optional>

#include "kiln/tensor.h"

namespace kiln {

// Normalization layers, as torch.nn.functional. `weight`/`bias` may be undefined
// (no affine transform). Forward and first-order backward are fused kernels;
// higher orders go through kiln ops (see Note [Norm double backward]).
KILN_API Tensor layer_norm(const Tensor& input, const Shape& normalized_shape,
                           const Tensor& weight = {}, const Tensor& bias = {}, double eps = 1e-5);
// eps defaults to the machine epsilon of input's dtype, as in PyTorch.
KILN_API Tensor rms_norm(const Tensor& input, const Shape& normalized_shape,
                         const Tensor& weight = {}, std::optional<double> eps = std::nullopt);
KILN_API Tensor group_norm(const Tensor& input, int64_t num_groups, const Tensor& weight = {},
                           const Tensor& bias = {}, double eps = 1e-5);
// In training mode, uses batch statistics and updates the running stats in place
// (running_var with the unbiased variance); otherwise normalizes with them.
KILN_API Tensor batch_norm(const Tensor& input, const Tensor& running_mean,
                           const Tensor& running_var, const Tensor& weight = {},
                           const Tensor& bias = {}, bool training = false, double momentum = 0.1,
                           double eps = 1e-5);

namespace normalization {

// Note [Norm layout]: every norm sees its (contiguous) input as [B, R, K] and
// normalizes each r over its B*K elements. layer/rms norm: B = 1, R = rows,
// K = prod(normalized_shape); group norm: B = 1, R = N*G, K = (C/G)*spatial;
// batch norm: B = N, R = C, K = spatial. Element (r, k) scales with
// weight[((r % P) * K + k) / S]: P = 1, S = 1 for layer norm; P = G,
// S = spatial for group norm; P = C, S = spatial for batch norm.
struct Layout {
  int64_t B, R, K, P, S;
};

}  // namespace normalization

}  // namespace kiln
