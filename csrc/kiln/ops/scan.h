#pragma once
#include <optional>

#include "kiln/tensor.h"

namespace kiln {

// Running sum / product along `dim`; integral and bool inputs accumulate in int64.
KILN_API Tensor cumsum(const Tensor& t, int64_t dim, std::optional<ScalarType> dtype = std::nullopt);
KILN_API Tensor cumprod(const Tensor& t, int64_t dim, std::optional<ScalarType> dtype = std::nullopt);

}  // namespace kiln
