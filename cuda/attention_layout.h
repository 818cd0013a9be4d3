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

// Where the batch dims of a (batch..., rows, cols) attention problem split into
// cuDNN's b and h: dims [0, split) merge into b, [split, end) into h. One split
// for all tensors of a problem (they share the batch shape): h is the last
// batch dim longer than 1 (the heads, for (N, heads, L, E)), b the ones before;
// with one such dim or none, h is 1.
inline int64_t head_split(const Tensor& t) {
  int64_t last = -1, longer = 0;
  for (int64_t d = 0; d + 2 < t.dim(); ++d) {
    if (t.size(d) > 1) last = d, ++longer;
  }
  return longer > 1 ? last : t.dim() - 2;
}

// t (batch..., rows, cols) as cuDNN's 4-D tensor, its batch dims split at
// `split` (head_split) and each part merged into one dim of one stride. None
// where its strides don't allow it: a part that doesn't merge, broadcast
// (zero) strides, columns not contiguous, rows not 16-byte aligned.
inline std::optional<Dims4> dims_of(const Tensor& t, int64_t split) {
  const int64_t rows = t.size(-2), cols = t.size(-1);
  const int64_t row_stride = rows == 1 ? cols : t.stride(-2);
  if (cols > 1 && t.stride(-1) != 1) return std::nullopt;
  // Dims [begin, end) as one (size, stride), or none; a part of size 1 gets
  // stride 0 here and the tensor's whole span below (any stride would do).
  const auto merged = [&](int64_t begin, int64_t end) -> std::optional<std::array<int64_t, 2>> {
    int64_t size = 1, stride = 0;
    for (int64_t d = begin; d < end; ++d) {
      if (t.size(d) == 1) continue;  // any stride: leave it out
      if (size > 1 && stride != t.stride(d) * t.size(d)) return std::nullopt;
      size *= t.size(d);
      stride = t.stride(d);
    }
    return std::array<int64_t, 2>{size, stride};
  };
  const auto b = merged(0, split), h = merged(split, t.dim() - 2);
  if (!b || !h) return std::nullopt;
  const int64_t span = std::max({rows * row_stride, (*b)[0] * (*b)[1], (*h)[0] * (*h)[1]});
  const auto stride_of = [&](const std::array<int64_t, 2>& part) {
    return part[0] == 1 ? span : part[1];
  };
  const Dims4 r{{(*b)[0], (*h)[0], rows, cols}, {stride_of(*b), stride_of(*h), row_stride, 1}};
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
// attention backward reads grad_out with the output's strides (and 16-byte
// aligned, as fresh tensors are).
inline Tensor in_layout_of(const Tensor& t, const Tensor& like) {
  if (t.strides() == like.strides() && reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0)
    return t;
  Tensor copy = empty_in_order_of(like, t.sizes());
  copy_(copy, t);
  return copy;
}

}  // namespace kiln::cuda
