#pragma once
// a + b, a - b and a * b rounded once each. On the device they are never fused
// into an FMA (which nvcc does by default), so kernels that must match the CPU
// bit for bit (arange, linspace, random samples, embedding gradients) use them.
#include <type_traits>

#include "kiln/macros.h"

namespace kiln {

template <class C>
KILN_HOST_DEVICE inline C add_rn(C a, C b) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<C, float>) return __fadd_rn(a, b);
  else if constexpr (std::is_same_v<C, double>) return __dadd_rn(a, b);
#endif
  return a + b;
}
template <class C>
KILN_HOST_DEVICE inline C sub_rn(C a, C b) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<C, float>) return __fsub_rn(a, b);
  else if constexpr (std::is_same_v<C, double>) return __dsub_rn(a, b);
#endif
  return a - b;
}
template <class C>
KILN_HOST_DEVICE inline C mul_rn(C a, C b) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<C, float>) return __fmul_rn(a, b);
  else if constexpr (std::is_same_v<C, double>) return __dmul_rn(a, b);
#endif
  return a * b;
}

}  // namespace kiln
