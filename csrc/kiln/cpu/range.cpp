// arange and linspace: out[i] is a function of i alone, computed as PyTorch does.
#include "kiln/dispatch.h"
#include "kiln/dtype_dispatch.h"
#include "kiln/error.h"
#include "kiln/parallel.h"
#include "kiln/scalar.h"
#include "kiln/tensor.h"

namespace kiln::cpu {
namespace {

template <class T, class F>
void fill_indexed(const Tensor& out, const F& f) {
  KILN_CHECK(out.is_contiguous(), Error, "[range] the CPU kernel expects a contiguous output");
  T* o = out.data<T>();
  parallel_for(0, out.numel(), kParallelGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) o[i] = f(i);
  });
}

// Computed in PyTorch's CPU accumulate types: int64 for integral outputs, float
// for the 16-bit floats, double for float32/float64 (so values round as PyTorch's do).
void arange_kernel(const Tensor& out, Scalar start, Scalar step) {
  visit_dtype(out.dtype(), [&]<class T>(TypeTag<T>) {
    if constexpr (std::is_integral_v<T>) {
      const int64_t s = start.to_int(), st = step.to_int();
      fill_indexed<T>(out, [=](int64_t i) { return static_cast<T>(s + st * i); });
    } else {
      using Acc = std::conditional_t<sizeof(T) == 2, float, double>;
      const Acc s = static_cast<Acc>(start.to_double()), st = static_cast<Acc>(step.to_double());
      fill_indexed<T>(out, [=](int64_t i) {
        return static_cast<T>(static_cast<OpMath<T>>(s + st * static_cast<Acc>(i)));
      });
    }
  });
}

// The first half counts up from start, the second down from end, so both ends are exact.
void linspace_kernel(const Tensor& out, Scalar start, Scalar end) {
  const int64_t steps = out.numel();
  visit_dtype(out.dtype(), [&]<class T>(TypeTag<T>) {
    using Step = std::conditional_t<std::is_integral_v<T>, double, OpMath<T>>;
    // Integral outputs convert the endpoints to T first, as PyTorch does.
    auto endpoint = [](Scalar v) {
      return std::is_integral_v<T> ? static_cast<Step>(v.to<T>())
                                   : static_cast<Step>(v.to_double());
    };
    const Step s = endpoint(start), e = endpoint(end);
    const Step step = steps > 1 ? (e - s) / static_cast<Step>(steps - 1) : Step(0);
    const int64_t halfway = steps / 2;
    fill_indexed<T>(out, [=](int64_t i) {
      const Step v = steps == 1 ? s
                     : i < halfway ? s + step * static_cast<Step>(i)
                                 : e - step * static_cast<Step>(steps - i - 1);
      if constexpr (std::is_same_v<T, bool>) return v != 0;
      else return static_cast<T>(v);
    });
  });
}

}  // namespace

KILN_REGISTER_KERNEL(arange, CPU, arange_kernel);
KILN_REGISTER_KERNEL(linspace, CPU, linspace_kernel);

}  // namespace kiln::cpu
