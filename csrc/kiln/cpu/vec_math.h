#pragma once
// Branch-free math that the compiler can vectorize inside plain loops (glibc's
// expf is a scalar call, which makes softmax compute-bound on it).
#include <cmath>
#include <cstdint>
#include <bit>
#include <limits>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

// Compiles a hot float loop for AVX-512, AVX2 and the baseline, picked at load time
// (the wheel itself targets baseline x86-64, i.e. SSE2 only).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define KILN_TARGET_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define KILN_TARGET_CLONES
#endif

namespace kiln::cpu {

// exp for float: Cody-Waite reduction to r in [-ln2/2, ln2/2], a degree-6
// polynomial (Cephes' expf coefficients, ~1 ulp) and a 2^n scale built in the
// exponent bits. Overflow gives inf, underflow 0, NaN stays NaN.
[[gnu::always_inline]] inline float vexp(float x) {
  const float hi = 88.3762626647949f, lo = -87.3365478515625f;
  // Written as single selects so loops calling this are if-converted and vectorized.
  float c = x > hi ? hi : x;
  c = c < lo ? lo : c;
  c = x != x ? 0.0f : c;
  // Round to nearest with the 1.5 * 2^23 trick (vectorizes without SSE4.1's roundps).
  const float n = (c * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = c - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float out = y * std::bit_cast<float>(bits);
  out = x > hi ? std::numeric_limits<float>::infinity() : out;
  out = x < lo ? 0.0f : out;
  return x != x ? x : out;
}

inline double vexp(double x) { return std::exp(x); }

// max (kMax) or min of x[0, n), NaN if any element is NaN; -inf/inf when n == 0.
// The compiler does not vectorize NaN-aware selects, so SSE does it by hand:
// maxps/minps for the values, an unordered compare for NaNs on the side.
template <bool kMax>
inline float row_extreme(const float* x, int64_t n) {
  const float worst = kMax ? -std::numeric_limits<float>::infinity()
                           : std::numeric_limits<float>::infinity();
  float best = worst;
  bool nan = false;
  int64_t k = 0;
#if defined(__SSE2__)
  __m128 a0 = _mm_set1_ps(worst), a1 = a0, bad = _mm_setzero_ps();
  for (; k + 8 <= n; k += 8) {
    const __m128 v0 = _mm_loadu_ps(x + k), v1 = _mm_loadu_ps(x + k + 4);
    a0 = kMax ? _mm_max_ps(a0, v0) : _mm_min_ps(a0, v0);
    a1 = kMax ? _mm_max_ps(a1, v1) : _mm_min_ps(a1, v1);
    bad = _mm_or_ps(bad, _mm_cmpunord_ps(v0, v1));
  }
  a0 = kMax ? _mm_max_ps(a0, a1) : _mm_min_ps(a0, a1);
  float lanes[4];
  _mm_storeu_ps(lanes, a0);
  for (float l : lanes) best = (kMax ? l > best : l < best) ? l : best;
  nan = _mm_movemask_ps(bad) != 0;
#endif
  for (; k < n; ++k) {
    best = (kMax ? x[k] > best : x[k] < best) ? x[k] : best;
    nan = nan || x[k] != x[k];
  }
  return nan ? std::numeric_limits<float>::quiet_NaN() : best;
}

}  // namespace kiln::cpu
