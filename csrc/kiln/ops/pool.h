#pragma once
#include <optional>
#include <utility>
#include <vector>

#include "kiln/tensor.h"

namespace kiln {

// Pooling as in torch.nn.functional, over (N, C, *spatial) or unbatched
// (C, *spatial) input. An empty `stride` means stride = kernel_size.
// Max pools return flat indices into each input plane (h * W + w).
KILN_API Tensor max_pool1d(const Tensor& input, const Shape& kernel_size, const Shape& stride = {},
                           const Shape& padding = {0}, const Shape& dilation = {1},
                           bool ceil_mode = false);
KILN_API Tensor max_pool2d(const Tensor& input, const Shape& kernel_size, const Shape& stride = {},
                           const Shape& padding = {0}, const Shape& dilation = {1},
                           bool ceil_mode = false);
KILN_API std::pair<Tensor, Tensor> max_pool1d_with_indices(
    const Tensor& input, const Shape& kernel_size, const Shape& stride = {},
    const Shape& padding = {0}, const Shape& dilation = {1}, bool ceil_mode = false);
KILN_API std::pair<Tensor, Tensor> max_pool2d_with_indices(
    const Tensor& input, const Shape& kernel_size, const Shape& stride = {},
    const Shape& padding = {0}, const Shape& dilation = {1}, bool ceil_mode = false);
KILN_API Tensor avg_pool1d(const Tensor& input, const Shape& kernel_size, const Shape& stride = {},
                           const Shape& padding = {0}, bool ceil_mode = false,
                           bool count_include_pad = true);
KILN_API Tensor avg_pool2d(const Tensor& input, const Shape& kernel_size, const Shape& stride = {},
                           const Shape& padding = {0}, bool ceil_mode = false,
                           bool count_include_pad = true,
                           std::optional<int64_t> divisor_override = std::nullopt);
// output_size entries of -1 keep the input's size (None in Python).
KILN_API Tensor adaptive_avg_pool1d(const Tensor& input, const Shape& output_size);
KILN_API Tensor adaptive_avg_pool2d(const Tensor& input, const Shape& output_size);
KILN_API std::pair<Tensor, Tensor> adaptive_max_pool1d(const Tensor& input,
                                                       const Shape& output_size);
KILN_API std::pair<Tensor, Tensor> adaptive_max_pool2d(const Tensor& input,
                                                       const Shape& output_size);

// The windows a pooling kernel visits, per output row (h) and column (w):
// input rows start + i * step for i < len (those outside the input are
// skipped), and for averages the divisor h_div[oh] * w_div[ow] (or `divisor`
// when nonzero). Kernels see contiguous (planes, H, W) tensors.
struct PoolGeometry {
  int64_t height = 0, width = 0, step_h = 1, step_w = 1;
  std::vector<int64_t> h_start, h_len, w_start, w_len;
  std::vector<double> h_div, w_div;
  double divisor = 0;
};

}  // namespace kiln
