#pragma once
#include <cstddef>
#include <cstdint>
#include <ostream>

#include "kiln/half.h"
#include "kiln/macros.h"

namespace kiln {

// Order matters: promotion uses it within a category (see dtype.cpp).
enum class ScalarType : int8_t {
  Bool,
  UInt8,
  Int8,
  Int16,
  Int32,
  Int64,
  Float16,
  BFloat16,
  Float32,
  Float64,
};
constexpr int kNumScalarTypes = 10;

KILN_API const char* dtype_name(ScalarType t);  // "float32", as in torch.float32
KILN_API size_t itemsize(ScalarType t);
KILN_API ScalarType promote_types(ScalarType a, ScalarType b);
// Parses "float32", "float", "int64", "long", ...; throws TypeError otherwise.
KILN_API ScalarType dtype_from_name(const char* name);

inline bool is_floating(ScalarType t) {
  return t == ScalarType::Float16 || t == ScalarType::BFloat16 || t == ScalarType::Float32 ||
         t == ScalarType::Float64;
}
inline bool is_integral(ScalarType t, bool include_bool) {
  return include_bool ? !is_floating(t) : (!is_floating(t) && t != ScalarType::Bool);
}
inline bool is_signed(ScalarType t) { return t != ScalarType::Bool && t != ScalarType::UInt8; }

// The floating type integral inputs become for ops like exp or true division.
KILN_API ScalarType default_float_dtype();
KILN_API void set_default_float_dtype(ScalarType t);

inline std::ostream& operator<<(std::ostream& os, ScalarType t) { return os << dtype_name(t); }

// C++ type <-> ScalarType.
template <class T>
struct dtype_of;
#define KILN_DTYPE_OF(T, E) \
  template <>               \
  struct dtype_of<T> {      \
    static constexpr ScalarType value = ScalarType::E; \
  };
KILN_DTYPE_OF(bool, Bool)
KILN_DTYPE_OF(uint8_t, UInt8)
KILN_DTYPE_OF(int8_t, Int8)
KILN_DTYPE_OF(int16_t, Int16)
KILN_DTYPE_OF(int32_t, Int32)
KILN_DTYPE_OF(int64_t, Int64)
KILN_DTYPE_OF(Half, Float16)
KILN_DTYPE_OF(BFloat16, BFloat16)
KILN_DTYPE_OF(float, Float32)
KILN_DTYPE_OF(double, Float64)
#undef KILN_DTYPE_OF

template <class T>
constexpr ScalarType dtype_v = dtype_of<T>::value;

}  // namespace kiln
