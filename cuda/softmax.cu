// softmax, log_softmax and single-dim logsumexp over one dim of a contiguous
// tensor viewed as [outer, n, inner], and the fused backward over the last dim.
// Math in MathT (float for 16-bit floats), as cpu/softmax.cpp. Rows (inner == 1)
// go to a warp or a block each; other dims to a thread per column, whose loads
// are coalesced across adjacent columns.
#include <limits>

#include "kiln/dispatch.h"
#include "reduce.cuh"

namespace kiln::cuda {
namespace {

enum class Mode { Softmax, LogSoftmax, LogSumExp };

struct MaxOp {  // NaNs are skipped; they still reach every output through the sum of exps
  template <class C>
  __device__ C operator()(C a, C b) const {
    return b > a ? b : a;
  }
};

template <class C>
__device__ __forceinline__ C neg_inf() {
  return -std::numeric_limits<C>::infinity();
}

template <RowGroup G, Mode kMode, class T>
__global__ void __launch_bounds__(row_block_bound(G), 1)
    softmax_rows(T* y, const T* x, int64_t rows, int64_t n) {
  using C = MathT<T>;
  using Grp = Rows<G>;
  __shared__ C smem[kWarp];
  for (int64_t r = Grp::first(); r < rows; r += Grp::stride()) {
    const T* xr = x + r * n;
    C m = neg_inf<C>();
    for (int64_t k = Grp::rank(); k < n; k += Grp::size()) m = MaxOp{}(m, static_cast<C>(xr[k]));
    m = Grp::allreduce(m, MaxOp{}, smem);
    // logsumexp shifts infinite maxes by 0 instead: all -inf gives -inf, +inf gives +inf.
    if (kMode == Mode::LogSumExp && isinf(m)) m = 0;
    C s = 0;
    for (int64_t k = Grp::rank(); k < n; k += Grp::size()) s += exp(static_cast<C>(xr[k]) - m);
    s = Grp::allreduce(s, Plus{}, smem);
    if constexpr (kMode == Mode::LogSumExp) {
      if (Grp::rank() == 0) y[r] = convert<T>(m + log(s));
    } else {
      T* yr = y + r * n;
      const C f = kMode == Mode::Softmax ? C(1) / s : log(s);
      for (int64_t k = Grp::rank(); k < n; k += Grp::size()) {
        const C v = static_cast<C>(xr[k]) - m;
        // (x - max) - log(sum) keeps the precision that x - (max + log(sum)) rounds away.
        yr[k] = convert<T>(kMode == Mode::Softmax ? exp(v) * f : v - f);
      }
    }
  }
}

template <Mode kMode, class T>
__global__ void softmax_columns(T* y, const T* x, int64_t outer, int64_t n, int64_t inner) {
  using C = MathT<T>;
  for (int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < outer * inner;
       c += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t base = (c / inner) * n * inner + c % inner;
    C m = neg_inf<C>();
    for (int64_t k = 0; k < n; ++k) m = MaxOp{}(m, static_cast<C>(x[base + k * inner]));
    if (kMode == Mode::LogSumExp && isinf(m)) m = 0;
    C s = 0;
    for (int64_t k = 0; k < n; ++k) s += exp(static_cast<C>(x[base + k * inner]) - m);
    if constexpr (kMode == Mode::LogSumExp) {
      y[c] = convert<T>(m + log(s));
    } else {
      const C f = kMode == Mode::Softmax ? C(1) / s : log(s);
      for (int64_t k = 0; k < n; ++k) {
        const C v = static_cast<C>(x[base + k * inner]) - m;
        y[base + k * inner] = convert<T>(kMode == Mode::Softmax ? exp(v) * f : v - f);
      }
    }
  }
}

// Fused backward of rows of length n:
//   softmax:     gx = y * (g - sum(g * y))
//   log_softmax: gx = g - exp(y) * sum(g)
template <RowGroup G, bool kLog, class T>
__global__ void __launch_bounds__(row_block_bound(G), 1)
    softmax_backward_rows(T* gx, const T* g, const T* y, int64_t rows, int64_t n) {
  using C = MathT<T>;
  using Grp = Rows<G>;
  __shared__ C smem[kWarp];
  for (int64_t r = Grp::first(); r < rows; r += Grp::stride()) {
    const int64_t b = r * n;
    C s = 0;
    for (int64_t k = Grp::rank(); k < n; k += Grp::size())
      s += kLog ? static_cast<C>(g[b + k]) : static_cast<C>(g[b + k]) * static_cast<C>(y[b + k]);
    s = Grp::allreduce(s, Plus{}, smem);
    for (int64_t k = Grp::rank(); k < n; k += Grp::size()) {
      const C gv = static_cast<C>(g[b + k]), yv = static_cast<C>(y[b + k]);
      gx[b + k] = convert<T>(kLog ? gv - exp(yv) * s : yv * (gv - s));
    }
  }
}

}  // namespace

// `in` contiguous; `out` contiguous with in's shape (softmax) or without `dim` (logsumexp).
template <Mode kMode>
void softmax_cuda(const Tensor& out, const Tensor& in, int64_t dim) {
  const char* op = kMode == Mode::Softmax      ? "softmax"
                   : kMode == Mode::LogSoftmax ? "log_softmax"
                                               : "logsumexp";
  visit_floating(in.dtype(), op, [&]<class K>(TypeTag<K>) {
    using T = DeviceT<K>;
    const auto [outer, n, inner] = around_dim(in, dim);
    if (outer * inner == 0 || (n == 0 && kMode != Mode::LogSumExp)) return;
    const Device device = in.device();
    DeviceGuard guard(device);
    T* y = reinterpret_cast<T*>(out.data_ptr());
    const T* x = reinterpret_cast<const T*>(in.data_ptr());
    if (inner == 1) {
      launch_rows(
          outer, n, device, op,
          [&](auto g, unsigned blocks, int threads, cudaStream_t st) {
            softmax_rows<decltype(g)::value, kMode, T><<<blocks, threads, 0, st>>>(y, x, outer, n);
          },
          RowLaunch::Wide);
      return;
    }
    softmax_columns<kMode, T>
        <<<capped_grid(outer * inner, device), kBlock, 0, current_stream(device)>>>(y, x, outer, n,
                                                                                    inner);
    check_launch(op);
  });
}

// Rows of the last dim of contiguous g and y.
template <bool kLog>
void softmax_backward_cuda(const Tensor& gx, const Tensor& g, const Tensor& y) {
  const char* op = kLog ? "log_softmax_backward" : "softmax_backward";
  visit_floating(y.dtype(), op, [&]<class K>(TypeTag<K>) {
    using T = DeviceT<K>;
    const int64_t n = y.dim() == 0 ? 1 : y.sizes().back();
    if (y.numel() == 0) return;
    const Device device = y.device();
    DeviceGuard guard(device);
    const int64_t rows = y.numel() / n;
    launch_rows(
        rows, n, device, op,
        [&](auto grp, unsigned blocks, int threads, cudaStream_t st) {
          softmax_backward_rows<decltype(grp)::value, kLog, T><<<blocks, threads, 0, st>>>(
              reinterpret_cast<T*>(gx.data_ptr()), reinterpret_cast<const T*>(g.data_ptr()),
              reinterpret_cast<const T*>(y.data_ptr()), rows, n);
        },
        RowLaunch::Wide);
  });
}

KILN_REGISTER_KERNEL(softmax_backward, CUDA, softmax_backward_cuda<false>);
KILN_REGISTER_KERNEL(log_softmax_backward, CUDA, softmax_backward_cuda<true>);
KILN_REGISTER_KERNEL(softmax, CUDA, softmax_cuda<Mode::Softmax>);
KILN_REGISTER_KERNEL(log_softmax, CUDA, softmax_cuda<Mode::LogSoftmax>);
KILN_REGISTER_KERNEL(logsumexp_dim, CUDA, softmax_cuda<Mode::LogSumExp>);

}  // namespace kiln::cuda
