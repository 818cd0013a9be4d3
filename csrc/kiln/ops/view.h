#pragma once
#include <optional>

#include "kiln/tensor.h"

namespace kiln {

// Views share memory with their input; all are differentiable.
KILN_API Tensor as_strided(const Tensor& t, const Shape& sizes, const Shape& strides,
                           std::optional<int64_t> storage_offset = std::nullopt);
// `shape` may hold one -1, inferred from numel.
KILN_API Tensor view(const Tensor& t, const Shape& shape);
KILN_API Tensor reshape(const Tensor& t, const Shape& shape);  // a view when possible
KILN_API Tensor expand(const Tensor& t, const Shape& shape);    // -1 keeps a size
KILN_API Tensor permute(const Tensor& t, const Shape& dims);
KILN_API Tensor transpose(const Tensor& t, int64_t dim0, int64_t dim1);
KILN_API Tensor unsqueeze(const Tensor& t, int64_t dim);
KILN_API Tensor squeeze(const Tensor& t);                        // all size-1 dims
KILN_API Tensor squeeze(const Tensor& t, const Shape& dims);     // those of `dims` that are 1
KILN_API Tensor select(const Tensor& t, int64_t dim, int64_t index);
// Python-style slice along `dim`: start/end clamp like Python, step > 0.
KILN_API Tensor slice(const Tensor& t, int64_t dim, std::optional<int64_t> start,
                      std::optional<int64_t> end, int64_t step = 1);
// Backward of select/slice: zeros of `input_sizes` with `grad` in the selected region.
// Differentiable (their backward is select/slice), so double backward through indexing works.
KILN_API Tensor select_backward(const Tensor& grad, const Shape& input_sizes, int64_t dim,
                                int64_t index);
KILN_API Tensor slice_backward(const Tensor& grad, const Shape& input_sizes, int64_t dim,
                               int64_t start, int64_t end, int64_t step);

// Resolves one -1 in `shape` against `numel`; ValueError naming `op` if impossible.
KILN_API Shape infer_size(const Shape& shape, int64_t numel, const char* op);

}  // namespace kiln
