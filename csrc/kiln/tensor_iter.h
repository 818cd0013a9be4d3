#pragma once
#include <array>
#include <cstdint>

#include "kiln/parallel.h"
#include "kiln/tensor.h"

namespace kiln {

// Walks an output and its inputs in lockstep for elementwise kernels.
// Operand 0 is the output; inputs must already be broadcast-compatible with
// it (they're expanded with zero strides). Dims are coalesced where every
// operand allows, so contiguous tensors become one flat loop.
//
// Kernels pass a loop body `(char** ptrs, const int64_t* strides, int64_t n)`
// that handles `n` elements of the innermost dim, strides in bytes.
class KILN_API TensorIter {
 public:
  static constexpr int kMaxOperands = 4;
  static constexpr int kMaxDims = 16;

  explicit TensorIter(std::initializer_list<Tensor> operands);

  int num_operands() const { return ntensors_; }
  int64_t numel() const { return numel_; }
  int ndim() const { return ndim_; }  // after coalescing; at least 1
  int64_t size(int d) const { return shape_[d]; }
  ScalarType dtype(int i) const { return dtypes_[i]; }
  // Operand t's data pointer and byte stride along coalesced dim d (device
  // kernels copy these into their own offset calculators).
  char* data(int t) const { return data_[t]; }
  int64_t stride(int t, int d) const { return strides_[t][d]; }

  // Serial walk over the linear range [begin, end) of the iteration space.
  template <class Loop>
  void serial_for_each(const Loop& loop, int64_t begin, int64_t end) const;

  // Parallel walk over everything (OpenMP when large enough).
  template <class Loop>
  void for_each(const Loop& loop, int64_t grain = kParallelGrain) const {
    if (numel_ == 0) return;
    parallel_for(0, numel_, grain,
                 [&](int64_t b, int64_t e) { serial_for_each(loop, b, e); });
  }

 private:
  int ntensors_ = 0;
  int64_t numel_ = 0;
  // Fixed-size arrays: building an iterator must not allocate (small ops are overhead-bound).
  int ndim_ = 1;
  int64_t shape_[kMaxDims] = {};  // coalesced; innermost last
  int64_t strides_[kMaxOperands][kMaxDims] = {};  // bytes
  std::array<char*, kMaxOperands> data_{};
  std::array<ScalarType, kMaxOperands> dtypes_{};
};

template <class Loop>
void TensorIter::serial_for_each(const Loop& loop, int64_t begin, int64_t end) const {
  const int nd = ndim_;
  const int64_t inner = shape_[nd - 1];
  // Multi-index of `begin` over the outer dims.
  int64_t counter[kMaxDims] = {};
  int64_t rest = begin / inner;
  int64_t pos = begin % inner;
  for (int d = nd - 2; d >= 0; --d) {
    counter[d] = rest % shape_[d];
    rest /= shape_[d];
  }
  char* ptrs[kMaxOperands];
  int64_t inner_strides[kMaxOperands];
  for (int t = 0; t < ntensors_; ++t) inner_strides[t] = strides_[t][nd - 1];
  int64_t i = begin;
  while (i < end) {
    for (int t = 0; t < ntensors_; ++t) {
      char* p = data_[t] + pos * strides_[t][nd - 1];
      for (int d = 0; d < nd - 1; ++d) p += counter[d] * strides_[t][d];
      ptrs[t] = p;
    }
    const int64_t n = std::min(inner - pos, end - i);
    loop(ptrs, inner_strides, n);
    i += n;
    pos = 0;
    for (int d = nd - 2; d >= 0; --d) {
      if (++counter[d] < shape_[d]) break;
      counter[d] = 0;
    }
  }
}

}  // namespace kiln
