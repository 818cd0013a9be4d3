#pragma once
#include <utility>

#include "kiln/tensor.h"

namespace kiln {

// Variance and standard deviation with divisor max(0, N - correction) (floating inputs only).
KILN_API Tensor var(const Tensor& t, const Shape& dims = {}, double correction = 1,
                    bool keepdim = false);
KILN_API Tensor std(const Tensor& t, const Shape& dims = {}, double correction = 1,
                    bool keepdim = false);
// (var, mean) and (std, mean) from one pass.
KILN_API std::pair<Tensor, Tensor> var_mean(const Tensor& t, const Shape& dims = {},
                                            double correction = 1, bool keepdim = false);
KILN_API std::pair<Tensor, Tensor> std_mean(const Tensor& t, const Shape& dims = {},
                                            double correction = 1, bool keepdim = false);

}  // namespace kiln
