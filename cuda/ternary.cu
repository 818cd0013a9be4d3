// Three-input elementwise kernels: where, clamp, lerp, addcmul, addcdiv. The
// arithmetic ones are the CPU functors (kiln/functors.h) through the generic
// launcher; where selects whole elements by byte size.
#include "index_common.cuh"
#include "kiln/dispatch.h"
#include "kiln/functors.h"

namespace kiln::cuda {
namespace {

// out = cond ? a : b; operands 0..3 are out, cond (bool), a, b with byte strides.
template <class E>
__global__ void where_kernel(int64_t n, OffsetCalc<4> calc, Array<char*, 4> p) {
  const int64_t e = thread_index();
  if (e >= n) return;
  int64_t off[4];
  calc.get(e, off);
  const bool c = *reinterpret_cast<const bool*>(p.v[1] + off[1]);
  *reinterpret_cast<E*>(p.v[0] + off[0]) =
      *reinterpret_cast<const E*>(c ? p.v[2] + off[2] : p.v[3] + off[3]);
}

}  // namespace

void where_cuda(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) {
  TensorIter iter({out, cond, a, b});
  const int64_t n = iter.numel();
  if (n == 0) return;
  OffsetCalc<4> calc{};
  calc.set(iter, false);
  Array<char*, 4> p{};
  for (int t = 0; t < 4; ++t) p.v[t] = iter.data(t);
  DeviceGuard guard(out.device());
  visit_itemsize(out.itemsize(), "where", [&]<class E>(TypeTag<E>) {
    where_kernel<E><<<blocks_for(n, "where"), kBlock, 0, current_stream(out.device())>>>(n, calc,
                                                                                         p);
  });
  check_launch("where");
}

namespace {

template <bool kFloatingOnly, class F>
void ternary_cuda(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& c,
                  const F& f, const char* op) {
  TensorIter iter({out, a, b, c});
  auto launch = [&]<class T>(TypeTag<T>) {
    launch_elementwise<T, T, 3>(iter, out.device(), f, op);
  };
  if constexpr (kFloatingOnly) visit_floating(a.dtype(), op, launch);
  else visit_dtype(a.dtype(), launch);
}

}  // namespace

void clamp_cuda(const Tensor& out, const Tensor& x, const Tensor& lo, const Tensor& hi) {
  ternary_cuda<false>(out, x, lo, hi, fn::Clamp{}, "clamp");
}
void lerp_cuda(const Tensor& out, const Tensor& start, const Tensor& end, const Tensor& w) {
  ternary_cuda<true>(out, start, end, w, fn::Lerp{}, "lerp");
}
void addcmul_cuda(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& c,
                  double value) {
  ternary_cuda<false>(out, a, b, c, fn::Addcmul{value}, "addcmul");
}
void addcdiv_cuda(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& c,
                  double value) {
  ternary_cuda<true>(out, a, b, c, fn::Addcdiv{value}, "addcdiv");
}

KILN_REGISTER_KERNEL(where, CUDA, where_cuda);
KILN_REGISTER_KERNEL(clamp, CUDA, clamp_cuda);
KILN_REGISTER_KERNEL(lerp, CUDA, lerp_cuda);
KILN_REGISTER_KERNEL(addcmul, CUDA, addcmul_cuda);
KILN_REGISTER_KERNEL(addcdiv, CUDA, addcdiv_cuda);

}  // namespace kiln::cuda
