// The CUDA kernel: one thread per element.
#include <cuda_runtime.h>

#include "bias_gelu.h"

using kiln::Tensor;

template <class T>
__global__ void bias_gelu_kernel(const T* x, const T* bias, T* out, int64_t numel, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= numel) return;
  const T u = x[i] + bias[i % n];
  out[i] = T(0.5) * u * (1 + tanh(T(kSqrt2OverPi) * (u + T(kGeluCoeff) * u * u * u)));
}

Tensor bias_gelu_cuda(const Tensor& x, const Tensor& bias) {
  check_bias_gelu(x, bias);
  Tensor xc = kiln::contiguous(x), bc = kiln::contiguous(bias);
  Tensor out = kiln::empty(x.sizes(), x.dtype(), x.device());
  const int64_t numel = xc.numel();
  if (numel == 0) return out;
  constexpr int kThreads = 256;
  const auto blocks = static_cast<unsigned>((numel + kThreads - 1) / kThreads);
  if (x.dtype() == kiln::ScalarType::Float32)
    bias_gelu_kernel<<<blocks, kThreads>>>(xc.data<float>(), bc.data<float>(), out.data<float>(),
                                           numel, bias.numel());
  else
    bias_gelu_kernel<<<blocks, kThreads>>>(xc.data<double>(), bc.data<double>(),
                                           out.data<double>(), numel, bias.numel());
  const cudaError_t err = cudaGetLastError();
  KILN_CHECK(err == cudaSuccess, Error, "[kiln_fused::bias_gelu] CUDA kernel launch failed: ",
             cudaGetErrorString(err));
  return out;
}
