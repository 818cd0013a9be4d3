#pragma once
#include <optional>

#include "kiln/tensor.h"

namespace kiln {

// torch.nn.functional.scaled_dot_product_attention without dropout:
// softmax(q @ k^T * scale + mask) @ v for q (..., L, E), k (..., S, E),
// v (..., S, Ev) whose batch dims broadcast. attn_mask (broadcastable to
// (..., L, S)) is bool (true = may attend) or additive float; is_causal lets
// query i attend keys j <= i; a query the mask leaves no key gets zeros (as in
// PyTorch). scale defaults to 1 / sqrt(E). A device with an
// "attention" kernel runs the fused forward (float32/16-bit); elsewhere the
// forward is composed of matmul and softmax. The backward recomputes the
// attention weights with kiln ops (Note [Attention backward]).
KILN_API Tensor scaled_dot_product_attention(const Tensor& query, const Tensor& key,
                                             const Tensor& value,
                                             const Tensor& attn_mask = Tensor(),
                                             bool is_causal = false,
                                             std::optional<double> scale = std::nullopt);

}  // namespace kiln
