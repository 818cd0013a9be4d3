#pragma once
#include <optional>

#include "kiln/tensor.h"

namespace kiln {

// Numerically stable fused kernels; `dtype` casts the input first. Integral inputs need `dtype`.
KILN_API Tensor softmax(const Tensor& t, int64_t dim, std::optional<ScalarType> dtype = std::nullopt);
KILN_API Tensor log_softmax(const Tensor& t, int64_t dim,
                            std::optional<ScalarType> dtype = std::nullopt);
// The input gradient of softmax, y * (g - sum(g y)), or of log_softmax,
// g - exp(y) sum(g), over `dim`, from its output y and output gradient g
// (PyTorch's _softmax_backward_data); differentiable.
KILN_API Tensor softmax_backward(const Tensor& g, const Tensor& y, int64_t dim, bool log = false);
// log(sum(exp(t))) over `dims` (empty = all) without overflow; integral inputs become float.
KILN_API Tensor logsumexp(const Tensor& t, const Shape& dims = {}, bool keepdim = false);

}  // namespace kiln
