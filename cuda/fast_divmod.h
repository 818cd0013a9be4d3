// Division by a divisor fixed for a whole launch, as a multiply-high, an add and
// a shift (Granlund and Montgomery, "Division by invariant integers using
// multiplication", 1994). Index math divides every element's linear index by
// the same sizes, and a 32-bit integer division is a long instruction sequence
// on NVIDIA GPUs. Host-compilable (tests/test_fast_divmod.py checks it on the CPU).
#pragma once
#include <bit>
#include <cstdint>

#include "kiln/macros.h"

namespace kiln::cuda {

// Exact for divisors 1 <= d <= 2^31 and dividends n < 2^31.
struct FastDivmod {
  uint32_t divisor = 1, multiplier = 1, shift = 0;

  FastDivmod() = default;
  explicit FastDivmod(uint32_t d)
      : divisor(d), shift(static_cast<uint32_t>(std::bit_width(d - 1))) {  // d <= 2^shift < 2d
    // ceil(2^32 * 2^shift / d) - 2^32, which is below 2^32.
    multiplier =
        static_cast<uint32_t>((uint64_t(1) << 32) * ((uint64_t(1) << shift) - d) / d + 1);
  }

  KILN_HOST_DEVICE uint32_t div(uint32_t n) const {
#if defined(__CUDA_ARCH__)
    const uint32_t hi = __umulhi(n, multiplier);
#else
    const uint32_t hi = static_cast<uint32_t>((uint64_t(n) * multiplier) >> 32);
#endif
    return (hi + n) >> shift;  // hi <= n < 2^31: no overflow
  }

  KILN_HOST_DEVICE uint32_t mod(uint32_t n, uint32_t quotient) const {
    return n - quotient * divisor;
  }
};

}  // namespace kiln::cuda
