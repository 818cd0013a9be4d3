#pragma once
#include <optional>

#include "kiln/tensor.h"

namespace kiln {

// Rows of `weight` (num_embeddings, embedding_dim) picked by the integer `input`;
// the result has shape input.shape + [embedding_dim]. Rows at padding_idx get no
// gradient. Out-of-range indices raise IndexError.
KILN_API Tensor embedding(const Tensor& input, const Tensor& weight,
                          std::optional<int64_t> padding_idx = std::nullopt);
// The gradient of embedding with respect to its weight: `grad` rows summed into a
// (num_weights, grad.size(-1)) tensor at `indices` (int64), skipping padding_idx.
// Differentiable in `grad`.
KILN_API Tensor embedding_backward(const Tensor& grad, const Tensor& indices, int64_t num_weights,
                                   std::optional<int64_t> padding_idx);

}  // namespace kiln
