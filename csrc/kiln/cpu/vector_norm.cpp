// Vector norms and |x|^p, the elementwise piece of their gradients.
#include <cmath>
#include <limits>

#include "kiln/cpu/loops.h"
#include "kiln/cpu/reduce_loops.h"
#include "kiln/dispatch.h"

namespace kiln::cpu {
namespace {

// Vector p-norms: p = 2, 1, +-inf, 0 (count of nonzeros) and any other p.
void norm_kernel(const Tensor& out, const Tensor& in, double p) {
  visit_floating(in.dtype(), "norm", [&]<class T>(TypeTag<T>) {
    T* o = out.data<T>();
    auto mag = [](T v) { return std::abs(static_cast<double>(static_cast<OpMath<T>>(v))); };
    auto add = [](double a, double b) { return a + b; };
    auto put = [o](int64_t i, double a) { o[i] = static_cast<T>(a); };
    if (std::isinf(p)) {
      const bool is_max = p > 0;
      auto pick = [is_max](double a, double b) {
        if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<double>::quiet_NaN();
        return is_max ? std::max(a, b) : std::min(a, b);
      };
      reduce_loop<T>(
          out, in, is_max ? 0.0 : std::numeric_limits<double>::infinity(),
          [=](double a, T v, int64_t) { return pick(a, mag(v)); }, pick,
          [put](int64_t i, double a, int64_t) { put(i, a); });
    } else if (p == 2) {
      reduce_loop<T>(
          out, in, 0.0, [=](double a, T v, int64_t) { return a + mag(v) * mag(v); }, add,
          [put](int64_t i, double a, int64_t) { put(i, std::sqrt(a)); });
    } else if (p == 1) {
      reduce_loop<T>(
          out, in, 0.0, [=](double a, T v, int64_t) { return a + mag(v); }, add,
          [put](int64_t i, double a, int64_t) { put(i, a); });
    } else if (p == 0) {
      reduce_loop<T>(
          out, in, 0.0, [=](double a, T v, int64_t) { return a + (mag(v) != 0 ? 1.0 : 0.0); }, add,
          [put](int64_t i, double a, int64_t) { put(i, a); });
    } else {
      reduce_loop<T>(
          out, in, 0.0, [=](double a, T v, int64_t) { return a + std::pow(mag(v), p); }, add,
          [=](int64_t i, double a, int64_t) { put(i, std::pow(a, 1.0 / p)); });
    }
  });
}

void abs_pow_kernel(const Tensor& out, const Tensor& in, double p) {
  TensorIter iter({out, in});
  visit_floating(in.dtype(), "abs_pow", [&]<class T>(TypeTag<T>) {
    using C = OpMath<T>;
    const C e = static_cast<C>(p);
    iter.for_each([e](char** ptrs, const int64_t* s, int64_t n) {
      unary_loop<T, T>(ptrs, s, n, [e](T v) { return static_cast<T>(std::pow(std::abs(static_cast<C>(v)), e)); });
    });
  });
}

}  // namespace

KILN_REGISTER_KERNEL(norm, CPU, norm_kernel);
KILN_REGISTER_KERNEL(_abs_pow, CPU, abs_pow_kernel);

}  // namespace kiln::cpu
