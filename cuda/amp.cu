// CUDA kernels of the gradient scaler's ops (front ends in csrc/kiln/ops/amp.cpp):
// one grid-stride launch per gradient and a one-thread launch for the scale
// update, all queued on the current stream, so the host never waits.
#include "context.h"
#include "kiln/amp_math.h"
#include "kiln/dispatch.h"
#include "loops.cuh"

namespace kiln::cuda {
namespace {

constexpr unsigned kMaxBlocks = 4096;

template <class T>
__global__ void unscale_kernel(int64_t n, T* data, const float* inv_scale, float* found_inf) {
  using M = MathT<T>;
  const M inv = static_cast<M>(*inv_scale);
  bool bad = false;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    data[i] = convert<T>(amp::unscale<M>(convert<M>(data[i]), inv, bad));
  if (bad) *found_inf = 1.0f;  // racing writers all store the same value
}

__global__ void update_scale_kernel(float* scale, int32_t* growth_tracker, const float* found_inf,
                                    double growth_factor, double backoff_factor,
                                    int64_t growth_interval) {
  amp::update_scale(*scale, *growth_tracker, *found_inf != 0.0f, growth_factor, backoff_factor,
                    growth_interval);
}

}  // namespace

void non_finite_check_and_unscale_cuda(const TensorList& tensors, const Tensor& found_inf,
                                       const Tensor& inv_scale) {
  static constexpr const char* op = "_amp_foreach_non_finite_check_and_unscale_";
  const Device device = found_inf.device();
  DeviceGuard guard(device);
  const cudaStream_t stream = current_stream(device);
  for (const Tensor& t : tensors) {
    const int64_t n = t.numel();
    if (n == 0) continue;
    const unsigned blocks = grid_for(n) < kMaxBlocks ? grid_for(n) : kMaxBlocks;
    visit_floating(t.dtype(), op, [&]<class K>(TypeTag<K>) {
      using T = DeviceT<K>;
      unscale_kernel<T><<<blocks, kBlock, 0, stream>>>(
          n, static_cast<T*>(t.data_ptr()), inv_scale.data<float>(), found_inf.data<float>());
      check_launch(op);
    });
  }
}

void update_scale_cuda(const Tensor& scale, const Tensor& growth_tracker, const Tensor& found_inf,
                       double growth_factor, double backoff_factor, int64_t growth_interval) {
  const Device device = scale.device();
  DeviceGuard guard(device);
  update_scale_kernel<<<1, 1, 0, current_stream(device)>>>(
      scale.data<float>(), growth_tracker.data<int32_t>(), found_inf.data<float>(), growth_factor,
      backoff_factor, growth_interval);
  check_launch("_amp_update_scale_");
}

KILN_REGISTER_KERNEL(amp_non_finite_check_and_unscale_, CUDA, non_finite_check_and_unscale_cuda);
KILN_REGISTER_KERNEL(amp_update_scale_, CUDA, update_scale_cuda);

}  // namespace kiln::cuda
