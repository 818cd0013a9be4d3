#pragma once
#include <type_traits>

#include "kiln/dtype.h"
#include "kiln/error.h"

namespace kiln {

template <class T>
struct TypeTag {
  using type = T;
};

// Calls f(TypeTag<T>{}) with the C++ type of `t`:
//   visit_dtype(t, [&]<class T>(TypeTag<T>) { ... });
template <class F>
decltype(auto) visit_dtype(ScalarType t, F&& f) {
  switch (t) {
    case ScalarType::Bool: return f(TypeTag<bool>{});
    case ScalarType::UInt8: return f(TypeTag<uint8_t>{});
    case ScalarType::Int8: return f(TypeTag<int8_t>{});
    case ScalarType::Int16: return f(TypeTag<int16_t>{});
    case ScalarType::Int32: return f(TypeTag<int32_t>{});
    case ScalarType::Int64: return f(TypeTag<int64_t>{});
    case ScalarType::Float16: return f(TypeTag<Half>{});
    case ScalarType::BFloat16: return f(TypeTag<BFloat16>{});
    case ScalarType::Float32: return f(TypeTag<float>{});
    case ScalarType::Float64: return f(TypeTag<double>{});
  }
  throw Error("[dispatch] unknown dtype");
}

// Same, restricted to floating types; other dtypes raise TypeError naming `op`.
template <class F>
decltype(auto) visit_floating(ScalarType t, const char* op, F&& f) {
  switch (t) {
    case ScalarType::Float16: return f(TypeTag<Half>{});
    case ScalarType::BFloat16: return f(TypeTag<BFloat16>{});
    case ScalarType::Float32: return f(TypeTag<float>{});
    case ScalarType::Float64: return f(TypeTag<double>{});
    default: break;
  }
  throw TypeError(std::string("[") + op + "] expected a floating point tensor, got " +
                  dtype_name(t));
}

// The type arithmetic on T is done in: float for the 16-bit floats, T otherwise.
template <class T>
using OpMath = std::conditional_t<std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>, float, T>;

// The type sums and products of T accumulate in: double for floating types
// (accuracy over speed; CPU reductions are memory-bound anyway), int64 otherwise.
template <class T>
using AccType = std::conditional_t<
    std::is_floating_point_v<T> || std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>,
    double, int64_t>;

}  // namespace kiln
