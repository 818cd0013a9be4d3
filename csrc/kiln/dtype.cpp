#include "kiln/dtype.h"

#include <atomic>
#include <cstring>
#include <string>

#include "kiln/error.h"

namespace kiln {

const char* dtype_name(ScalarType t) {
  switch (t) {
    case ScalarType::Bool: return "bool";
    case ScalarType::UInt8: return "uint8";
    case ScalarType::Int8: return "int8";
    case ScalarType::Int16: return "int16";
    case ScalarType::Int32: return "int32";
    case ScalarType::Int64: return "int64";
    case ScalarType::Float16: return "float16";
    case ScalarType::BFloat16: return "bfloat16";
    case ScalarType::Float32: return "float32";
    case ScalarType::Float64: return "float64";
  }
  return "?";
}

size_t itemsize(ScalarType t) {
  switch (t) {
    case ScalarType::Bool:
    case ScalarType::UInt8:
    case ScalarType::Int8: return 1;
    case ScalarType::Int16:
    case ScalarType::Float16:
    case ScalarType::BFloat16: return 2;
    case ScalarType::Int32:
    case ScalarType::Float32: return 4;
    case ScalarType::Int64:
    case ScalarType::Float64: return 8;
  }
  return 0;
}

ScalarType dtype_from_name(const char* name) {
  static const struct {
    const char* name;
    ScalarType type;
  } table[] = {
      {"bool", ScalarType::Bool},         {"uint8", ScalarType::UInt8},
      {"int8", ScalarType::Int8},         {"int16", ScalarType::Int16},
      {"short", ScalarType::Int16},       {"int32", ScalarType::Int32},
      {"int", ScalarType::Int32},         {"int64", ScalarType::Int64},
      {"long", ScalarType::Int64},        {"float16", ScalarType::Float16},
      {"half", ScalarType::Float16},      {"bfloat16", ScalarType::BFloat16},
      {"float32", ScalarType::Float32},   {"float", ScalarType::Float32},
      {"float64", ScalarType::Float64},   {"double", ScalarType::Float64},
  };
  for (const auto& e : table)
    if (std::strcmp(e.name, name) == 0) return e.type;
  throw TypeError(std::string("unknown dtype '") + name + "'");
}

// PyTorch's promotion lattice: within a category the larger type wins; a
// floating type beats any integral one; uint8 with a signed integer gives the
// next signed type that holds both; float16 with bfloat16 gives float32.
ScalarType promote_types(ScalarType a, ScalarType b) {
  if (a == b) return a;
  using S = ScalarType;
  const bool fa = is_floating(a), fb = is_floating(b);
  if (fa && fb) {
    if ((a == S::Float16 && b == S::BFloat16) || (a == S::BFloat16 && b == S::Float16))
      return S::Float32;
    return static_cast<int>(a) > static_cast<int>(b) ? a : b;
  }
  if (fa) return a;
  if (fb) return b;
  if (a == S::Bool) return b;
  if (b == S::Bool) return a;
  if (a == S::UInt8 || b == S::UInt8) {
    const S other = a == S::UInt8 ? b : a;
    return other == S::Int8 ? S::Int16 : other;
  }
  return static_cast<int>(a) > static_cast<int>(b) ? a : b;
}

static std::atomic<ScalarType> g_default_float{ScalarType::Float32};
ScalarType default_float_dtype() { return g_default_float.load(std::memory_order_relaxed); }
void set_default_float_dtype(ScalarType t) {
  KILN_CHECK(t == ScalarType::Float32 || t == ScalarType::Float64, TypeError,
             "[set_default_dtype] only float32 and float64 are supported, got ", t);
  g_default_float.store(t);
}

}  // namespace kiln
