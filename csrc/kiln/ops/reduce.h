#pragma once
#include <optional>

#include "kiln/tensor.h"

namespace kiln {

// `dims` empty means all dims. Integral and bool inputs sum in int64.
KILN_API Tensor sum(const Tensor& t, const Shape& dims = {}, bool keepdim = false,
                    std::optional<ScalarType> dtype = std::nullopt);
KILN_API Tensor all(const Tensor& t, const Shape& dims = {}, bool keepdim = false);
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

}  // namespace reduction

}  // namespace kiln
