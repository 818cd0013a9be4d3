#pragma once
// bias_gelu(x, bias) = gelu(x + bias), tanh approximation, in one pass over memory
// (instead of an add and GELU's several elementwise passes).
#include <kiln/extension.h>

constexpr double kSqrt2OverPi = 0.7978845608028654;
constexpr double kGeluCoeff = 0.044715;

// Shared by the CPU and CUDA kernels: errors name the op, shapes and dtypes.
void check_bias_gelu(const kiln::Tensor& x, const kiln::Tensor& bias);

#ifdef KILN_WITH_CUDA
kiln::Tensor bias_gelu_cuda(const kiln::Tensor& x, const kiln::Tensor& bias);  // bias_gelu.cu
#endif
