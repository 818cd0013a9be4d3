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
// exponent bits, applied in two halves so that results near FLT_MAX and in the
// subnormal range come out right. Overflow gives inf, underflow 0, NaN stays NaN.
[[gnu::always_inline]] inline float vexp(float x) {
  const float hi = 88.72283935546875f, lo = -103.97208404541015625f;
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
  const int32_t ni = static_cast<int32_t>(n), half = ni >> 1;  // n in [-150, 128]
  const float s1 = std::bit_cast<float>((half + 127) << 23);
  const float s2 = std::bit_cast<float>((ni - half + 127) << 23);
  float out = y * s1 * s2;
  out = x > hi ? std::numeric_limits<float>::infinity() : out;
  out = x < lo ? 0.0f : out;
  return x != x ? x : out;
}

inline double vexp(double x) { return std::exp(x); }

// c ? a : b through bit masks: GCC keeps the float math on both sides unconditional
// (it won't speculate float ops past a branch under -ftrapping-math), so loops vectorize.
[[gnu::always_inline]] inline float select_bits(bool c, float a, float b) {
  const int32_t m = -static_cast<int32_t>(c);
  return std::bit_cast<float>((std::bit_cast<int32_t>(a) & m) | (std::bit_cast<int32_t>(b) & ~m));
}

// log for float: x = 2^e * m with m in [sqrt(1/2), sqrt(2)), log(m) from Cephes'
// logf polynomial in f = m - 1 (~1 ulp). Subnormals are scaled up first; x < 0 and
// NaN give NaN, 0 gives -inf, inf stays inf.
[[gnu::always_inline]] inline float vlog(float x) {
  const bool tiny = x < std::numeric_limits<float>::min();
  const int32_t bits = std::bit_cast<int32_t>(select_bits(tiny, x * 8388608.0f, x));  // 2^23
  // Mantissa in [0.5, 1) and its exponent, as frexp gives them.
  const float m = std::bit_cast<float>((bits & 0x007fffff) | 0x3f000000);
  const bool low = m < 0.707106781186547524f;
  const int32_t ei = ((bits >> 23) & 0xff) - 126 - (tiny ? 23 : 0) - (low ? 1 : 0);
  const float e = static_cast<float>(ei);
  const float f = select_bits(low, m + m - 1.0f, m - 1.0f);
  const float z = f * f;
  float p = 7.0376836292e-2f;
  p = p * f - 1.1514610310e-1f;
  p = p * f + 1.1676998740e-1f;
  p = p * f - 1.2420140846e-1f;
  p = p * f + 1.4249322787e-1f;
  p = p * f - 1.6668057665e-1f;
  p = p * f + 2.0000714765e-1f;
  p = p * f - 2.4999993993e-1f;
  p = p * f + 3.3333331174e-1f;
  const float y = p * f * z + e * -2.12194440e-4f - 0.5f * z;
  float out = (f + y) + e * 0.693359375f;
  const float inf = std::numeric_limits<float>::infinity();
  out = select_bits(x > std::numeric_limits<float>::max(), inf, out);
  out = select_bits(std::fabs(x) > 0.0f, out, -inf);
  out = select_bits(x < 0.0f, std::numeric_limits<float>::quiet_NaN(), out);
  return select_bits(x != x, x, out);
}

inline double vlog(double x) { return std::log(x); }

// tanh for float: Cephes' odd polynomial below |x| = 0.625 (keeps tanh(x) ~ x
// exact for tiny x and the sign of zero), 1 - 2 / (exp(2|x|) + 1) above.
[[gnu::always_inline]] inline float vtanh(float x) {
  const float a = std::fabs(x), z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = p * z * x + x;
  const float big = std::copysign(1.0f - 2.0f / (vexp(a + a) + 1.0f), x);
  return select_bits(a > 0.0f, select_bits(a < 0.625f, small, big), x);  // x: NaN, -0
}

inline double vtanh(double x) { return std::tanh(x); }

// 1 / (1 + exp(-x)) for float, from e = exp(-|x|) so that neither side overflows:
// 1 / (1 + e) for x >= 0, e / (1 + e) below (keeps tiny results for very negative x).
[[gnu::always_inline]] inline float vsigmoid(float x) {
  const float e = vexp(-std::fabs(x));
  const float r = 1.0f / (1.0f + e);
  return select_bits(x < 0.0f, e * r, r);
}

inline double vsigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// P(t) of the Chebyshev fit erfc(a) = t exp(-a^2 + P(t)), t = 1 / (1 + a/2), from
// Numerical Recipes' erfcc: fractional error < 1.2e-7 at every a >= 0.
[[gnu::always_inline]] inline float erfc_fit(float t) {
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  return p * t - 1.26551223f;
}

// erf for float: the odd Taylor series below |x| = 0.5 (relative-exact for tiny x,
// sign of zero kept), 1 - erfc(|x|) above.
[[gnu::always_inline]] inline float verf(float x) {
  const float a = std::fabs(x), z = x * x;
  float p = 1.0f / 9360.0f;
  p = p * z - 1.0f / 1320.0f;
  p = p * z + 1.0f / 216.0f;
  p = p * z - 1.0f / 42.0f;
  p = p * z + 0.1f;
  p = p * z - 1.0f / 3.0f;
  p = p * z + 1.0f;
  const float small = x * p * 1.12837916709551257f;  // 2 / sqrt(pi)
  const float t = 1.0f / (1.0f + 0.5f * a);
  // erfc(|x|) < 1e-36 is below float's resolution near 1; capping x^2 at 80 keeps exp
  // out of the subnormal range, where every operation is ~100x slower.
  const float zc = z > 80.0f ? 80.0f : z;
  const float big = std::copysign(1.0f - t * vexp(erfc_fit(t) - zc), x);
  return select_bits(a < 0.5f, small, big);  // NaN takes `big`, which stays NaN
}

inline double verf(double x) { return std::erf(x); }

// x Phi(x) = x (1 + erf(x / sqrt 2)) / 2, the formula torch uses (it cancels below
// x ~ -5, as torch's does; an erfc form for the tail did not vectorize).
[[gnu::always_inline]] inline float vgelu(float x) {
  return 0.5f * x * (1.0f + verf(x * 0.70710678118654752f));
}

inline double vgelu(double x) { return 0.5 * x * (1.0 + std::erf(x * 0.70710678118654752440)); }

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
