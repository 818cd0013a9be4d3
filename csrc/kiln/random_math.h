#pragma once
// Per-element sampling math shared by the CPU and CUDA random kernels, so both
// give the same numbers for the same (seed, offset) (Note [Random stream
// layout] in philox.h). On the device, sums and products are rounded once each
// (never fused into an FMA) to match the host; transcendental functions
// (normal_'s log/sqrt/sin/cos, multinomial's log) may differ in the last bit.
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kiln/half.h"
#include "kiln/philox.h"
#include "kiln/rounding.h"

namespace kiln::random_math {

// Bits of precision of a floating type (uniform samples are multiples of 2^-digits,
// so they stay below 1 after rounding to the type).
template <class T>
constexpr int kDigits = std::is_same_v<T, double> ? 53 : std::is_same_v<T, float> ? 24
                        : std::is_same_v<T, Half> ? 11 : 8;

// A uniform sample in [0, 1) with T's precision, computed in C.
template <class T, class C>
KILN_HOST_DEVICE inline C unit_uniform(const Philox4x32& r) {
  if constexpr (kDigits<T> > 32) return static_cast<C>(uniform_double(r.v[0], r.v[1]));
  else
    return static_cast<C>(r.v[0] >> (32 - kDigits<T>)) *
           static_cast<C>(1.0 / (1ULL << kDigits<T>));
}

// lo + width * u, for uniform_ (C: the math type of T).
template <class T, class C>
KILN_HOST_DEVICE inline C uniform(const Philox4x32& r, C lo, C width) {
  return add_rn(lo, mul_rn(width, unit_uniform<T, C>(r)));
}

// u in (0, 1] from 53 bits (never 0, so log(u) is finite).
KILN_HOST_DEVICE inline double open_unit(uint32_t lo, uint32_t hi) {
  return (static_cast<double>(bits64(lo, hi) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
}

// Box-Muller: one Philox block gives a pair of normal samples, for elements
// 2j (the cosine branch) and 2j + 1 (the sine branch).
template <class C>
struct Pair {
  C even, odd;
};
template <class T, class C>
KILN_HOST_DEVICE inline Pair<C> normal_pair(const Philox4x32& r, C mean, C std) {
  const C u1 = static_cast<C>(open_unit(r.v[0], r.v[1]));  // 53 bits keep the tails (|z| < ~8.6)
  const C u2 = kDigits<T> > 32 ? static_cast<C>(uniform_double(r.v[2], r.v[3]))
                               : static_cast<C>(uniform_float(r.v[2]));
  const C scale = mul_rn(std, std::sqrt(mul_rn(C(-2), std::log(u1))));
  const C angle = mul_rn(C(6.283185307179586), u2);
  return {add_rn(mean, mul_rn(scale, std::cos(angle))),
          add_rn(mean, mul_rn(scale, std::sin(angle)))};
}

// from + (64 random bits mod range): the modulo bias is below range / 2^64.
KILN_HOST_DEVICE inline int64_t random_int(const Philox4x32& r, int64_t from, uint64_t range) {
  return static_cast<int64_t>(static_cast<uint64_t>(from) + bits64(r.v[0], r.v[1]) % range);
}

KILN_HOST_DEVICE inline bool bernoulli(const Philox4x32& r, double p) {
  return uniform_double(r.v[0], r.v[1]) < p;
}

// multinomial with replacement: the category a sample u in [0, total) falls in,
// the first whose cumulative weight (cum) exceeds u, moved down past zero weights.
KILN_HOST_DEVICE inline int64_t sample_category(const double* cum, const double* w, int64_t cats,
                                                double u) {
  int64_t lo = 0, hi = cats;  // binary search: the first c with cum[c] > u
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (cum[mid] > u) hi = mid;
    else lo = mid + 1;
  }
  int64_t c = lo < cats - 1 ? lo : cats - 1;
  while (w[c] == 0 && c > 0) --c;
  return c;
}

// multinomial without replacement: category c of a row with weight w gets the
// exponential key -log(u) / w; the `samples` smallest keys are the sample.
KILN_HOST_DEVICE inline double exponential_key(const Philox4x32& r, double w) {
  return w > 0 ? -std::log(open_unit(r.v[0], r.v[1])) / w : INFINITY;
}

}  // namespace kiln::random_math
