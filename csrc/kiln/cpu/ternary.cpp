// Three-input elementwise kernels.
#include "kiln/cpu/loops.h"
#include "kiln/dispatch.h"
#include "kiln/functors.h"

namespace kiln::cpu {
namespace {

void where_kernel(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) {
  TensorIter iter({out, cond, a, b});
  visit_dtype(out.dtype(), [&]<class T>(TypeTag<T>) {
    iter.for_each([](char** p, const int64_t* s, int64_t n) {
      for (int64_t i = 0; i < n; ++i) {
        const bool c = *reinterpret_cast<const bool*>(p[1] + i * s[1]);
        *reinterpret_cast<T*>(p[0] + i * s[0]) =
            *reinterpret_cast<const T*>(p[c ? 2 : 3] + i * s[c ? 2 : 3]);
      }
    });
  });
}

void clamp_kernel(const Tensor& out, const Tensor& x, const Tensor& lo, const Tensor& hi) {
  ternary_apply(out, x, lo, hi, fn::Clamp{});
}
void lerp_kernel(const Tensor& out, const Tensor& start, const Tensor& end, const Tensor& w) {
  ternary_float_apply(out, start, end, w, fn::Lerp{});
}
void addcmul_kernel(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& c,
                    double value) {
  ternary_apply(out, a, b, c, fn::Addcmul{value});
}
void addcdiv_kernel(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& c,
                    double value) {
  ternary_float_apply(out, a, b, c, fn::Addcdiv{value});
}

}  // namespace

KILN_REGISTER_KERNEL(where, CPU, where_kernel);
KILN_REGISTER_KERNEL(clamp, CPU, clamp_kernel);
KILN_REGISTER_KERNEL(lerp, CPU, lerp_kernel);
KILN_REGISTER_KERNEL(addcmul, CPU, addcmul_kernel);
KILN_REGISTER_KERNEL(addcdiv, CPU, addcdiv_kernel);

}  // namespace kiln::cpu
