// zlib-compatible CRC-32. The fast path folds the message 64 bytes at a time with
// carry-less multiplications: a 128-bit block A followed by D bits of message is
// congruent (mod P) to A's two 64-bit halves times x^(D+32) and x^(D-32) (bit-reflected),
// so four 128-bit accumulators absorb the data, fold into one, and that one 16-byte
// remainder is finished with the table, which avoids the Barrett reduction step.
#include "kiln/io/crc32.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace kiln::io {
namespace {

constexpr uint32_t kPoly = 0xEDB88320u;

using Tables = std::array<std::array<uint32_t, 256>, 8>;

Tables make_tables() {
  Tables t{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t c = b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (kPoly & (0u - (c & 1u)));
    t[0][b] = c;
  }
  for (int s = 1; s < 8; ++s)
    for (uint32_t b = 0; b < 256; ++b) t[s][b] = (t[s - 1][b] >> 8) ^ t[0][t[s - 1][b] & 0xFF];
  return t;
}

const Tables& tables() {
  static const Tables t = make_tables();
  return t;
}

// The raw register update (no pre/post inversion), eight bytes per step.
uint32_t crc_table(uint32_t c, const uint8_t* p, size_t n) {
  const Tables& t = tables();
  for (; n >= 8; n -= 8, p += 8) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);  // little-endian hosts only (x86-64, aarch64)
    std::memcpy(&hi, p + 4, 4);
    lo ^= c;
    c = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^
        t[3][hi & 0xFF] ^ t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
  }
  for (; n > 0; --n, ++p) c = (c >> 8) ^ t[0][(c ^ *p) & 0xFF];
  return c;
}

#if defined(__x86_64__)
// reflect(x^k mod P) << 1 for k = D + 32 (low half) and D - 32 (high half) when
// folding a block forward by D bits: D = 2048 (four 64-byte blocks), 512 (four
// 16-byte blocks or one 64-byte block), 128 (one 16-byte block).
constexpr long long kFold2048Lo = 0x11542778a, kFold2048Hi = 0x1322d1430;
constexpr long long kFold512Lo = 0x154442bd4, kFold512Hi = 0x1c6e41596;
constexpr long long kFold128Lo = 0x1751997d0, kFold128Hi = 0x0ccaa009e;

#define KILN_CLMUL __attribute__((target("pclmul,sse4.1")))
#define KILN_VCLMUL __attribute__((target("pclmul,sse4.1,avx512f,avx512vl,vpclmulqdq")))

KILN_CLMUL inline __m128i fold(__m128i acc, __m128i k, __m128i next) {
  const __m128i lo = _mm_clmulepi64_si128(acc, k, 0x00);
  const __m128i hi = _mm_clmulepi64_si128(acc, k, 0x11);
  return _mm_xor_si128(_mm_xor_si128(lo, hi), next);
}

KILN_CLMUL inline __m128i load16(const uint8_t* q) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
}

// Folds four consecutive 16-byte accumulators into one, absorbs the remaining whole
// 16-byte blocks, then finishes the last remainder and the tail with the table.
KILN_CLMUL uint32_t finish(__m128i x0, __m128i x1, __m128i x2, __m128i x3, const uint8_t* p,
                           size_t n) {
  const __m128i k = _mm_set_epi64x(kFold128Hi, kFold128Lo);
  __m128i x = fold(fold(fold(x0, k, x1), k, x2), k, x3);
  for (; n >= 16; n -= 16, p += 16) x = fold(x, k, load16(p));
  alignas(16) uint8_t rest[16];
  _mm_store_si128(reinterpret_cast<__m128i*>(rest), x);
  return crc_table(crc_table(0, rest, 16), p, n);
}

// n >= 64.
KILN_CLMUL uint32_t crc_clmul(uint32_t c, const uint8_t* p, size_t n) {
  __m128i x0 = _mm_xor_si128(load16(p), _mm_cvtsi32_si128(static_cast<int>(c)));
  __m128i x1 = load16(p + 16), x2 = load16(p + 32), x3 = load16(p + 48);
  p += 64;
  n -= 64;
  const __m128i k = _mm_set_epi64x(kFold512Hi, kFold512Lo);
  for (; n >= 64; n -= 64, p += 64) {
    x0 = fold(x0, k, load16(p));
    x1 = fold(x1, k, load16(p + 16));
    x2 = fold(x2, k, load16(p + 32));
    x3 = fold(x3, k, load16(p + 48));
  }
  return finish(x0, x1, x2, x3, p, n);
}

KILN_VCLMUL inline __m512i vfold(__m512i acc, __m512i k, __m512i next) {
  const __m512i lo = _mm512_clmulepi64_epi128(acc, k, 0x00);
  const __m512i hi = _mm512_clmulepi64_epi128(acc, k, 0x11);
  return _mm512_ternarylogic_epi64(lo, hi, next, 0x96);  // lo ^ hi ^ next
}

KILN_VCLMUL inline __m512i load(const uint8_t* q) { return _mm512_loadu_si512(q); }

// (GCC 12's _mm512_broadcast_i32x4 trips -Wuninitialized in its own header.)
KILN_VCLMUL inline __m512i broadcast(long long hi, long long lo) {
  return _mm512_set_epi64(hi, lo, hi, lo, hi, lo, hi, lo);
}

// The same with four 64-byte accumulators (each four 16-byte lanes); n >= 256.
KILN_VCLMUL uint32_t crc_vclmul(uint32_t c, const uint8_t* p, size_t n) {
  const __m128i init = _mm_cvtsi32_si128(static_cast<int>(c));
  __m512i z0 = _mm512_xor_si512(load(p), _mm512_inserti32x4(_mm512_setzero_si512(), init, 0));
  __m512i z1 = load(p + 64), z2 = load(p + 128), z3 = load(p + 192);
  p += 256;
  n -= 256;
  const __m512i k4 = broadcast(kFold2048Hi, kFold2048Lo);
  for (; n >= 256; n -= 256, p += 256) {
    z0 = vfold(z0, k4, load(p));
    z1 = vfold(z1, k4, load(p + 64));
    z2 = vfold(z2, k4, load(p + 128));
    z3 = vfold(z3, k4, load(p + 192));
  }
  const __m512i k1 = broadcast(kFold512Hi, kFold512Lo);
  __m512i z = vfold(vfold(vfold(z0, k1, z1), k1, z2), k1, z3);
  for (; n >= 64; n -= 64, p += 64) z = vfold(z, k1, load(p));
  alignas(64) __m128i lanes[4];
  _mm512_store_si512(lanes, z);
  return finish(lanes[0], lanes[1], lanes[2], lanes[3], p, n);
}

bool has_clmul() {
  static const bool yes = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
  return yes;
}

bool has_vclmul() {
  static const bool yes = has_clmul() && __builtin_cpu_supports("avx512f") &&
                          __builtin_cpu_supports("avx512vl") &&
                          __builtin_cpu_supports("vpclmulqdq");
  return yes;
}
#endif

}  // namespace

uint32_t crc32(uint32_t crc, const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t c = ~crc;
#if defined(__x86_64__)
  if (n >= 256 && has_vclmul()) return ~crc_vclmul(c, p, n);
  if (n >= 64 && has_clmul()) return ~crc_clmul(c, p, n);
#endif
  return ~crc_table(c, p, n);
}

}  // namespace kiln::io
