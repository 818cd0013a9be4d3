#pragma once
#include <optional>

#include "kiln/scalar.h"
#include "kiln/tensor.h"

namespace kiln {

// [start, end) in steps of `step`: ceil((end - start) / step) elements. Without
// `dtype`, int64 when all three are integers, else the default float dtype.
KILN_API Tensor arange(Scalar start, Scalar end, Scalar step = 1,
                       std::optional<ScalarType> dtype = std::nullopt, Device device = Device());
// `steps` evenly spaced values from start to end inclusive (default float dtype).
KILN_API Tensor linspace(Scalar start, Scalar end, int64_t steps,
                         std::optional<ScalarType> dtype = std::nullopt, Device device = Device());
// An n x m matrix (m defaults to n) with ones on the diagonal.
KILN_API Tensor eye(int64_t n, std::optional<int64_t> m = std::nullopt,
                    std::optional<ScalarType> dtype = std::nullopt, Device device = Device());

}  // namespace kiln
