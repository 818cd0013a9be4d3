#pragma once
// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
// SC'11): a counter-based generator. A block of four 32-bit outputs is a pure
// function of a 128-bit counter and a 64-bit key, so any element of a random
// stream can be computed independently, on any thread or device, and the
// stream does not depend on how the work is split. Header-only and free of
// host-only code so CUDA kernels can include it and produce the same values.
#include <cstdint>

#include "kiln/macros.h"

namespace kiln {

struct Philox4x32 {
  uint32_t v[4];
};

KILN_HOST_DEVICE inline Philox4x32 philox4x32_10(Philox4x32 ctr, uint32_t k0, uint32_t k1) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kW0;
      k1 += kW1;
    }
    const uint64_t p0 = static_cast<uint64_t>(kM0) * ctr.v[0];
    const uint64_t p1 = static_cast<uint64_t>(kM1) * ctr.v[2];
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    ctr = {{hi1 ^ ctr.v[1] ^ k0, lo1, hi0 ^ ctr.v[3] ^ k1, lo0}};
  }
  return ctr;
}

// Note [Random stream layout]: every random op reserves one offset from its
// generator per call; element i of the op's output uses the Philox block with
// counter (i, offset) and key seed (normal_ shares one block between elements
// 2j and 2j+1, the two halves of a Box-Muller pair). So a value depends only
// on (seed, offset, i), never on thread count or device.
struct PhiloxSeed {
  uint64_t seed = 0;
  uint64_t offset = 0;

  KILN_HOST_DEVICE Philox4x32 block(uint64_t index) const {
    const Philox4x32 ctr{{static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32),
                          static_cast<uint32_t>(offset), static_cast<uint32_t>(offset >> 32)}};
    return philox4x32_10(ctr, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  }
};

// Uniform floats from random bits: multiples of 2^-digits in [0, 1).
KILN_HOST_DEVICE inline float uniform_float(uint32_t bits) {
  return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f);
}
KILN_HOST_DEVICE inline double uniform_double(uint32_t lo, uint32_t hi) {
  const uint64_t bits = (static_cast<uint64_t>(hi) << 32) | lo;
  return static_cast<double>(bits >> 11) * (1.0 / 9007199254740992.0);
}
KILN_HOST_DEVICE inline uint64_t bits64(uint32_t lo, uint32_t hi) {
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

}  // namespace kiln
