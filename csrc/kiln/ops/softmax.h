#pragma once
#include <optional>

#include "kiln/tensor.h"

namespace kiln {

// Numerically stable fused kernels; `dtype` casts the input first. Integral inputs need `dtype`.
KILN_API Tensor softmax(const Tensor& t, int64_t dim, std::optional<ScalarType> dtype = std::nullopt);
KILN_API Tensor log_softmax(const Tensor& t, int64_t dim,
                            std::optional<ScalarType> dtype = std::nullopt);
// log(sum(exp(t))) over `dims` (empty = all) without overflow; integral inputs become float.
KILN_API Tensor logsumexp(const Tensor& t, const Shape& dims = {}, bool keepdim = false);

}  // namespace kiln
