// Cumulative sum and product along one dim of a contiguous tensor viewed as
// [outer, n, inner], forwards or in reverse (the reverse cumsum is cumsum's backward).
#include <vector>

#include "kiln/dispatch.h"
#include "kiln/dtype_dispatch.h"
#include "kiln/parallel.h"
#include "kiln/tensor.h"

namespace kiln::cpu {
namespace {

template <bool kProd>
void scan_kernel(const Tensor& out, const Tensor& in, int64_t dim, bool reverse) {
  visit_dtype(in.dtype(), [&]<class T>(TypeTag<T>) {
    using Acc = std::conditional_t<std::is_same_v<T, bool>, int64_t, AccType<T>>;
    const Shape& s = in.sizes();
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < dim; ++d) outer *= s[d];
    for (int64_t d = dim + 1; d < in.dim(); ++d) inner *= s[d];
    const int64_t n = in.dim() == 0 ? 1 : s[dim];
    if (in.numel() == 0) return;
    const T* x = in.data<T>();
    T* y = out.data<T>();
    auto step = [](Acc a, T v) {
      const Acc w = static_cast<Acc>(static_cast<OpMath<T>>(v));
      return kProd ? a * w : a + w;
    };
    parallel_for(0, outer, std::max<int64_t>(1, kParallelGrain / (n * inner)),
                 [&](int64_t b, int64_t e) {
      if (inner == 1) {  // rows: one running accumulator in a register
        for (int64_t r = b; r < e; ++r) {
          Acc acc(kProd ? 1 : 0);
          for (int64_t i = 0; i < n; ++i) {
            const int64_t k = r * n + (reverse ? n - 1 - i : i);
            acc = step(acc, x[k]);
            y[k] = static_cast<T>(acc);
          }
        }
        return;
      }
      std::vector<Acc> acc(inner);
      for (int64_t r = b; r < e; ++r) {
        std::fill(acc.begin(), acc.end(), Acc(kProd ? 1 : 0));
        for (int64_t i = 0; i < n; ++i) {
          const int64_t k = reverse ? n - 1 - i : i;
          const T* xr = x + (r * n + k) * inner;
          T* yr = y + (r * n + k) * inner;
          for (int64_t j = 0; j < inner; ++j) {
            acc[j] = step(acc[j], xr[j]);
            yr[j] = static_cast<T>(acc[j]);
          }
        }
      }
    });
  });
}

}  // namespace

KILN_REGISTER_KERNEL(cumsum, CPU, scan_kernel<false>);
KILN_REGISTER_KERNEL(cumprod, CPU, scan_kernel<true>);

}  // namespace kiln::cpu
