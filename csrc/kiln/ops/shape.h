#pragma once
#include <vector>

#include "kiln/tensor.h"

namespace kiln {

// Shape ops built from the view primitives in view.h: each result shares
// memory with its input (flatten/unflatten only when a view is possible, like
// reshape) and is differentiable through those primitives.
KILN_API Tensor flatten(const Tensor& t, int64_t start_dim = 0, int64_t end_dim = -1);
// Splits dim `dim` into `sizes` (one entry may be -1).
KILN_API Tensor unflatten(const Tensor& t, int64_t dim, const Shape& sizes);
// Elements [start, start + length) of `dim`; start may be negative.
KILN_API Tensor narrow(const Tensor& t, int64_t dim, int64_t start, int64_t length);
// Pieces of `split_size` along `dim` (the last may be smaller).
KILN_API TensorList split(const Tensor& t, int64_t split_size, int64_t dim = 0);
KILN_API TensorList split_with_sizes(const Tensor& t, const Shape& split_sizes, int64_t dim = 0);
KILN_API TensorList chunk(const Tensor& t, int64_t chunks, int64_t dim = 0);
KILN_API TensorList unbind(const Tensor& t, int64_t dim = 0);
// Transpose of a tensor of at most 2 dims (0-d and 1-d come back as views of themselves).
KILN_API Tensor t(const Tensor& t);
// All dims reversed (Tensor.T) and the last two swapped (Tensor.mT).
KILN_API Tensor reverse_dims(const Tensor& t);
KILN_API Tensor matrix_transpose(const Tensor& t);
KILN_API Tensor movedim(const Tensor& t, const Shape& source, const Shape& destination);

}  // namespace kiln
