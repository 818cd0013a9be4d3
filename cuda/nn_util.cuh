#pragma once
// Small helpers of the nn kernels (conv, pool, optim, attention): grid sizes
// for one-thread-per-element kernels and host tables copied to the device.
#include <vector>

#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "loops.cuh"

namespace kiln::cuda {

// Blocks of kBlock threads for `n` elements; throws (naming op) past CUDA's grid limit.
inline unsigned blocks_for(int64_t n, const char* op) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  KILN_CHECK(blocks < (int64_t(1) << 31), ValueError, "[", op, "] tensor too large: ", n,
             " elements");
  return static_cast<unsigned>(blocks);
}

// A host vector as a device tensor. The copy is queued on the current stream,
// and the tensor's memory is freed on that stream, after the kernels reading it.
template <class T>
Tensor to_device_table(const std::vector<T>& v, ScalarType dtype, Device device) {
  static_assert(sizeof(T) == 8, "tables hold int64 or double");
  Tensor host = empty({static_cast<int64_t>(v.size())}, dtype, Device());
  std::copy(v.begin(), v.end(), host.data<T>());
  return to_device(host, device);
}

}  // namespace kiln::cuda
