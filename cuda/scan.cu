// Cumulative sum and product along one dim of a contiguous tensor viewed as
// [outer, n, inner], forwards or in reverse (the reverse cumsum is cumsum's
// backward). Accumulates as cpu/scan.cpp does: double for floating dtypes, int64
// otherwise. Rows (inner == 1): a warp or a block per row scans tiles of its width
// and carries each tile's total into the next; other dims: a thread per column.
#include "kiln/dispatch.h"
#include "reduce.cuh"

namespace kiln::cuda {
namespace {

template <class T>
using ScanAcc = std::conditional_t<std::is_integral_v<T>, int64_t, double>;

template <bool kProd>
struct ScanOp {
  template <class A>
  __device__ A operator()(A a, A b) const {
    return kProd ? a * b : a + b;
  }
};

// Inclusive scan of one value per thread across a warp; `total` gets lane 31's result.
template <class A, class Op>
__device__ __forceinline__ A warp_scan(A v, const Op& op, A& total) {
  const int lane = threadIdx.x % kWarp;
#pragma unroll
  for (int d = 1; d < kWarp; d *= 2) {
    const A t = shfl<Shfl::Up>(v, d);
    if (lane >= d) v = op(t, v);
  }
  total = shfl<Shfl::Idx>(v, kWarp - 1);
  return v;
}

// The same across a block (smem: 32 values); every thread of the block must call it.
template <class A, class Op>
__device__ __forceinline__ A block_scan(A v, const Op& op, A& total, A* smem) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  A wt;
  v = warp_scan(v, op, wt);
  if (lane == 0) smem[warp] = wt;
  __syncthreads();
  total = smem[0];
  for (int w = 1; w < static_cast<int>(blockDim.x / kWarp); ++w) {
    if (w == warp) v = op(total, v);  // total so far is the prefix of the warps before
    total = op(total, smem[w]);
  }
  __syncthreads();
  return v;
}

template <RowGroup G, bool kProd, class T>
__global__ void __launch_bounds__(row_block_bound(G), 1)
    scan_rows(T* y, const T* x, int64_t rows, int64_t n, bool reverse) {
  using A = ScanAcc<T>;
  using Grp = Rows<G>;
  __shared__ A smem[kWarp];
  const ScanOp<kProd> op;
  for (int64_t r = Grp::first(); r < rows; r += Grp::stride()) {
    A carry = A(kProd ? 1 : 0);
    for (int64_t t0 = 0; t0 < n; t0 += Grp::size()) {
      const int64_t i = t0 + Grp::rank();
      const int64_t k = r * n + (reverse ? n - 1 - i : i);
      A v = i < n ? static_cast<A>(static_cast<MathT<T>>(x[k])) : A(kProd ? 1 : 0);
      A total;
      if constexpr (G == RowGroup::Warp)
        v = warp_scan(v, op, total);
      else
        v = block_scan(v, op, total, smem);
      if (i < n) y[k] = convert<T>(op(carry, v));
      carry = op(carry, total);
    }
  }
}

template <bool kProd, class T>
__global__ void scan_columns(T* y, const T* x, int64_t outer, int64_t n, int64_t inner,
                             bool reverse) {
  using A = ScanAcc<T>;
  const ScanOp<kProd> op;
  for (int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < outer * inner;
       c += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t base = (c / inner) * n * inner + c % inner;
    A acc = A(kProd ? 1 : 0);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t k = base + (reverse ? n - 1 - i : i) * inner;
      acc = op(acc, static_cast<A>(static_cast<MathT<T>>(x[k])));
      y[k] = convert<T>(acc);
    }
  }
}

}  // namespace

template <bool kProd>
void scan_cuda(const Tensor& out, const Tensor& in, int64_t dim, bool reverse) {
  const char* op = kProd ? "cumprod" : "cumsum";
  if (in.numel() == 0) return;
  const auto [outer, n, inner] = around_dim(in, dim);
  const Device device = in.device();
  DeviceGuard guard(device);
  visit_dtype(in.dtype(), [&]<class K>(TypeTag<K>) {
    using T = DeviceT<K>;
    T* y = reinterpret_cast<T*>(out.data_ptr());
    const T* x = reinterpret_cast<const T*>(in.data_ptr());
    if (inner == 1) {
      launch_rows(
          outer, n, device, op,
          [&](auto g, unsigned blocks, int threads, cudaStream_t st) {
            scan_rows<decltype(g)::value, kProd, T>
                <<<blocks, threads, 0, st>>>(y, x, outer, n, reverse);
          },
          RowLaunch::Wide);
      return;
    }
    const int64_t cols = outer * inner;
    scan_columns<kProd, T><<<capped_grid(cols, device), kBlock, 0, current_stream(device)>>>(
        y, x, outer, n, inner, reverse);
    check_launch(op);
  });
}

KILN_REGISTER_KERNEL(cumsum, CUDA, scan_cuda<false>);
KILN_REGISTER_KERNEL(cumprod, CUDA, scan_cuda<true>);

}  // namespace kiln::cuda
