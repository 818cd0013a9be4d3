// Copy with dtype conversion and broadcasting, and fill.
#include "kiln/cpu/loops.h"
#include "kiln/dispatch.h"
#include "kiln/error.h"
#include "kiln/scalar.h"

namespace kiln::cpu {
namespace {

template <class To, class From>
inline To convert(From v) {
  if constexpr (std::is_same_v<To, bool>) return static_cast<OpMath<From>>(v) != OpMath<From>(0);
  else if constexpr (std::is_same_v<To, Half> || std::is_same_v<To, BFloat16>)
    return To(static_cast<float>(static_cast<OpMath<From>>(v)));
  else return static_cast<To>(static_cast<OpMath<From>>(v));
}

void copy_kernel(const Tensor& dst, const Tensor& src) {
  KILN_CHECK(dst.device().is_cpu() && src.device().is_cpu(), Error,
             "[copy_] the CPU kernel got a tensor on another device");
  TensorIter iter({dst, src});
  visit_dtype(dst.dtype(), [&]<class To>(TypeTag<To>) {
    visit_dtype(src.dtype(), [&]<class From>(TypeTag<From>) {
      iter.for_each([](char** p, const int64_t* s, int64_t n) {
        unary_loop<To, From>(p, s, n, [](From v) { return convert<To>(v); });
      });
    });
  });
}

void fill_kernel(const Tensor& dst, Scalar value) {
  TensorIter iter({dst});
  visit_dtype(dst.dtype(), [&]<class T>(TypeTag<T>) {
    const T v = value.to<T>();
    iter.for_each([v](char** p, const int64_t* s, int64_t n) {
      if (s[0] == sizeof(T)) {
        T* o = reinterpret_cast<T*>(p[0]);
        for (int64_t i = 0; i < n; ++i) o[i] = v;
      } else {
        for (int64_t i = 0; i < n; ++i) *reinterpret_cast<T*>(p[0] + i * s[0]) = v;
      }
    });
  });
}

}  // namespace

KILN_REGISTER_KERNEL(copy, CPU, copy_kernel);
KILN_REGISTER_KERNEL(fill, CPU, fill_kernel);

}  // namespace kiln::cpu
