#pragma once
#include <optional>

#include "kiln/tensor.h"

namespace kiln {

// Vector p-norm over `dims` (empty = all): p = 2 (also 'fro'), 1, +-inf, 0 or any number.
KILN_API Tensor norm(const Tensor& t, double p = 2, const Shape& dims = {}, bool keepdim = false,
                     std::optional<ScalarType> dtype = std::nullopt);

}  // namespace kiln
