#pragma once
// CUDA runtime glue shared by every file of the backend: error checks that
// become kiln exceptions naming the op, the current device and stream.
#include <cuda_runtime_api.h>

#include "kiln/device.h"
#include "kiln/error.h"

namespace kiln::cuda {

// Throws kiln::Error "[op] CUDA error <name>: <description>".
[[noreturn]] void throw_cuda_error(cudaError_t err, const char* op);

inline void check(cudaError_t err, const char* op) {
  if (err != cudaSuccess) [[unlikely]] throw_cuda_error(err, op);
}
// After a kernel launch: launch-configuration errors and earlier asynchronous faults.
inline void check_launch(const char* op) { check(cudaGetLastError(), op); }

int device_count();  // 0 when there is no driver or no device
int query_or_zero(cudaError_t (*query)(int*));  // e.g. query_or_zero(&cudaGetDevice)
int current_device();
void set_device(int index);

// The stream kernels of this thread are queued on for `device` (the legacy
// default stream, nullptr, unless a kiln.cuda.stream(...) context is active).
cudaStream_t current_stream(int device);
void set_current_stream(int device, cudaStream_t stream);
inline cudaStream_t current_stream(Device d) { return current_stream(d.index); }

// Makes `device` current for a scope and restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  explicit DeviceGuard(Device d) : DeviceGuard(static_cast<int>(d.index)) {}
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_;
};

// Whether cuBLAS may use TF32 tensor cores for float32 GEMMs, with PyTorch's two
// switches and defaults: matmuls (kiln.backends.cuda.matmul.allow_tf32, off) and
// convolutions (kiln.backends.cudnn.allow_tf32, on).
enum class Tf32Switch { Matmul, Convolution };
bool allow_tf32(Tf32Switch which);
void set_allow_tf32(Tf32Switch which, bool allow);

}  // namespace kiln::cuda
