// Reduction kernels: (out with reduced dims of size 1, in).
#include "kiln/cpu/reduce_loops.h"
#include "kiln/dispatch.h"

namespace kiln::cpu {
namespace {

void sum_kernel(const Tensor& out, const Tensor& in) {
  visit_dtype(in.dtype(), [&]<class T>(TypeTag<T>) {
    using Acc = std::conditional_t<std::is_same_v<T, bool>, int64_t, AccType<T>>;
    reduce_loop<T, T>(
        out, in, Acc(0), [](Acc a, T v) { return a + static_cast<Acc>(static_cast<OpMath<T>>(v)); },
        [](Acc a, Acc b) { return a + b; }, [](Acc a, int64_t) { return static_cast<T>(a); });
  });
}

void all_kernel(const Tensor& out, const Tensor& in) {
  reduce_loop<bool, bool>(
      out, in, true, [](bool a, bool v) { return a && v; }, [](bool a, bool b) { return a && b; },
      [](bool a, int64_t) { return a; });
}

}  // namespace

KILN_REGISTER_KERNEL(sum, CPU, sum_kernel);
KILN_REGISTER_KERNEL(all, CPU, all_kernel);

}  // namespace kiln::cpu
