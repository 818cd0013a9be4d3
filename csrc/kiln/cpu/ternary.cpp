// Three-input elementwise kernels.
#include "kiln/cpu/loops.h"
#include "kiln/dispatch.h"

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

}  // namespace

KILN_REGISTER_KERNEL(where, CPU, where_kernel);

}  // namespace kiln::cpu
