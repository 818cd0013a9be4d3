#pragma once
#include <optional>

#include "kiln/tensor.h"

namespace kiln {

// Reductions over `dims` (empty = all dims), as in PyTorch.
// Integral and bool inputs sum (and multiply) in int64 unless `dtype` says otherwise.
KILN_API Tensor sum(const Tensor& t, const Shape& dims = {}, bool keepdim = false,
                    std::optional<ScalarType> dtype = std::nullopt);
// Floating inputs only (or an explicit floating `dtype`); the mean of nothing is nan.
KILN_API Tensor mean(const Tensor& t, const Shape& dims = {}, bool keepdim = false,
                     std::optional<ScalarType> dtype = std::nullopt);
// sum and mean that skip NaNs.
KILN_API Tensor nansum(const Tensor& t, const Shape& dims = {}, bool keepdim = false,
                       std::optional<ScalarType> dtype = std::nullopt);
KILN_API Tensor nanmean(const Tensor& t, const Shape& dims = {}, bool keepdim = false,
                        std::optional<ScalarType> dtype = std::nullopt);
KILN_API Tensor prod(const Tensor& t, const Shape& dims = {}, bool keepdim = false,
                     std::optional<ScalarType> dtype = std::nullopt);
// Bool results (uint8 for uint8 inputs, as in PyTorch); not differentiable.
KILN_API Tensor all(const Tensor& t, const Shape& dims = {}, bool keepdim = false);
KILN_API Tensor any(const Tensor& t, const Shape& dims = {}, bool keepdim = false);
KILN_API Tensor count_nonzero(const Tensor& t, const Shape& dims = {});
// Sums `t` down to `shape` (the inverse of broadcasting `shape` up to t's shape).
KILN_API Tensor sum_to(const Tensor& t, const Shape& shape);

namespace reduction {

// Output of reducing `t` over `dims` (empty = all), keeping reduced dims as size 1.
// Reduction kernels take (out_keepdim, in) and reduce wherever out has size 1 and in doesn't.
KILN_API Shape keepdim_shape(const char* op, const Tensor& t, const Shape& dims);
// Removes the reduced dims (those in `dims`, or all if empty) from a keepdim shape.
KILN_API Shape squeeze_reduced(const Shape& keepdim_shape, const Tensor& t, const Shape& dims);
// Re-inserts reduced dims as size 1 so a gradient of the reduced output broadcasts back.
KILN_API Tensor unsqueeze_reduced(const Tensor& grad, const Shape& input_shape,
                                  const Shape& dims, bool keepdim);
// How many elements of `t` fold into each output element.
KILN_API int64_t reduced_count(const Tensor& t, const Shape& dims);
// IndexError naming `op` when a reduction without identity (max, argmax, ...) would reduce
// over nothing.
KILN_API void check_nonempty(const char* op, const Tensor& t, const Shape& dims);

}  // namespace reduction

}  // namespace kiln
