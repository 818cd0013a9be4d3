#pragma once
// How cuDNN's fused attention (attention_cudnn.cpp) sees kiln tensors: a
// (batch..., rows, cols) view as its 4-D (b, h, rows, cols) tensor, read in
// place where the strides allow, and the layout of the tensors it writes.
// Header-only and free of CUDA, so tests/test_attention_layout.py checks it
// on the CPU.
#include <algorithm>
#include <array>
#include <cstdint>
#include <numeric>
#include <optional>
#include <vector>

#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/view.h"
#include "kiln/tensor.h"

namespace kiln::cuda {

// A (batch..., rows, cols) tensor in cuDNN's terms: (b, h, rows, cols).
struct Dims4 {
  std::array<int64_t, 4> size, stride;
  auto operator<=>(const Dims4&) const = default;
};

// t (batch..., rows, cols) as cuDNN's 4-D tensor: its batch dims merged into
// two, each with one stride. None where its strides don't allow it: batch
// dims that don't merge into two, broadcast (zero) strides, columns not
// contiguous, rows not 16-byte aligned.
inline std::optional<Dims4> dims_of(const Tensor& t) {
  struct Dim {
    int64_t size, stride;
  };
  std::vector<Dim> batch;
  for (int64_t d = 0; d + 2 < t.dim(); ++d) {
    if (t.size(d) == 1) continue;  // any stride: leave it out
    if (!batch.empty() && batch.back().stride == t.stride(d) * t.size(d))
      batch.back() = {batch.back().size * t.size(d), t.stride(d)};
    else
      batch.push_back({t.size(d), t.stride(d)});
  }
  const int64_t rows = t.size(-2), cols = t.size(-1);
  const int64_t row_stride = rows == 1 ? cols : t.stride(-2);
  if (batch.size() > 2 || (cols > 1 && t.stride(-1) != 1)) return std::nullopt;
  // Missing batch dims are of size 1, with the whole span as stride (any would do).
  int64_t span = rows * row_stride;
  for (const Dim& d : batch) span = std::max(span, d.size * d.stride);
  while (batch.size() < 2) batch.insert(batch.begin(), Dim{1, span});
  const Dims4 r{{batch[0].size, batch[1].size, rows, cols},
                {batch[0].stride, batch[1].stride, row_stride, 1}};
  const int64_t per_16_bytes = 16 / static_cast<int64_t>(t.itemsize());
  for (int d = 0; d < 3; ++d)
    if (r.stride[d] <= 0 || r.stride[d] % per_16_bytes) return std::nullopt;
  if (reinterpret_cast<uintptr_t>(t.data_ptr()) % 16) return std::nullopt;
  return r;
}

// An empty tensor of `sizes` whose dims lie in memory in the order of like's
// strides, as PyTorch's empty_like keeps a layout: q's for the output, so
// that merging MultiheadAttention's heads back is a view.
inline Tensor empty_in_order_of(const Tensor& like, const Shape& sizes) {
  std::vector<int64_t> order(sizes.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return like.stride(a) > like.stride(b); });
  Shape permuted, inverse(order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    permuted.push_back(sizes[order[i]]);
    inverse[order[i]] = static_cast<int64_t>(i);
  }
  return permute(empty(permuted, like.dtype(), like.device()), inverse);
}

// t, or a copy of it laid out as `like` (dense), which has t's sizes: cuDNN's
// attention backward reads grad_out with the output's strides.
inline Tensor in_layout_of(const Tensor& t, const Tensor& like) {
  if (t.strides() == like.strides()) return t;
  Tensor copy = empty_in_order_of(like, t.sizes());
  copy_(copy, t);
  return copy;
}

}  // namespace kiln::cuda
