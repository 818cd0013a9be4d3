#pragma once
#include <cstddef>
#include <cstdint>

#include "kiln/macros.h"

namespace kiln::io {

// CRC-32 as zlib's crc32(crc, data, n) computes it (reflected polynomial 0xEDB88320,
// pre- and post-inverted), so values match Python's zlib.crc32. Uses carry-less
// multiplication (AVX-512 VPCLMULQDQ or PCLMULQDQ) where the CPU has it, else a
// slicing-by-8 table.
KILN_API uint32_t crc32(uint32_t crc, const void* data, size_t n);

}  // namespace kiln::io
