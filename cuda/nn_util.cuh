#pragma once
// Small helper of the nn kernels (conv, pool, optim, attention): host tables
// copied to the device.
#include <vector>

#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "loops.cuh"

namespace kiln::cuda {

// A host vector as a device tensor. The copy is queued on the current stream
// without waiting for it: the host side is pageable memory, which cudaMemcpyAsync
// has staged by the time it returns (a blocking copy would drain the stream at every
// pooling op). The tensor's memory is freed on that stream, after the kernels reading it.
template <class T>
Tensor to_device_table(const std::vector<T>& v, ScalarType dtype, Device device) {
  static_assert(sizeof(T) == 8, "tables hold int64 or double");
  Tensor host = empty({static_cast<int64_t>(v.size())}, dtype, Device());
  std::copy(v.begin(), v.end(), host.data<T>());
  return to_device(host, device, /*copy=*/false, /*non_blocking=*/true);
}

}  // namespace kiln::cuda
