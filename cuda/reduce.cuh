#pragma once
// Warp/block reduction helpers and the generic reduction launcher shared by the
// reduce, minmax, vector_norm, softmax, norm and loss kernels.
//
// Note [CUDA reduction layout]: every reduction sees its input as a contiguous
// [outer, n, inner] block and reduces over n. A reducer R is a device functor:
//   Acc init()                           the empty accumulator
//   Acc reduce(Acc, In v, int64_t k)     folds element k (< n) of a slice
//   Acc combine(Acc, Acc)                merges two accumulators (associative;
//                                        argmax-style reducers break ties by k)
//   void store(int64_t o, Acc, int64_t n) writes output o = outer_i * inner + j
// Rows (inner == 1) are folded by a warp or a block each; columns (inner > 1)
// by 32 adjacent columns x 8 row-slices per block, so loads stay coalesced.
// When there are too few slices to fill the GPU, each slice is split into
// chunks whose accumulators go through a scratch buffer and a second pass.
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/view.h"
#include "kiln/tensor.h"
#include "loops.cuh"

namespace kiln::cuda {

constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;

// A warp shuffle of any trivially copyable value, one 32-bit word at a time.
enum class Shfl { Xor, Up, Idx };
template <Shfl kKind, class A>
__device__ __forceinline__ A shfl(const A& v, int arg) {
  static_assert(std::is_trivially_copyable_v<A>, "shuffled values must be trivially copyable");
  constexpr int kWords = (sizeof(A) + 3) / 4;
  int w[kWords] = {};
  memcpy(w, &v, sizeof(A));
#pragma unroll
  for (int i = 0; i < kWords; ++i) {
    if constexpr (kKind == Shfl::Xor)
      w[i] = __shfl_xor_sync(kFullMask, w[i], arg);
    else if constexpr (kKind == Shfl::Up)
      w[i] = __shfl_up_sync(kFullMask, w[i], arg);
    else
      w[i] = __shfl_sync(kFullMask, w[i], arg);
  }
  A r;
  memcpy(&r, w, sizeof(A));
  return r;
}
template <class A>
__device__ __forceinline__ A shfl_xor(const A& v, int mask) {
  return shfl<Shfl::Xor>(v, mask);
}

// Every lane of a full warp gets the combination of all 32 lanes' values.
template <class A, class F>
__device__ __forceinline__ A warp_allreduce(A v, const F& combine) {
#pragma unroll
  for (int m = kWarp / 2; m > 0; m /= 2) v = combine(v, shfl_xor(v, m));
  return v;
}

// Every thread of a 1-D block (blockDim.x a multiple of 32, at most 1024) gets the
// combination of all threads' values, combined in the same order everywhere.
// `smem` holds 32 values; all threads of the block must call this.
template <class A, class F>
__device__ __forceinline__ A block_allreduce(A v, const F& combine, A* smem) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int nwarps = blockDim.x / kWarp;
  v = warp_allreduce(v, combine);
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  A r = smem[0];
  for (int w = 1; w < nwarps; ++w) r = combine(r, smem[w]);
  __syncthreads();  // smem may be reused right after
  return r;
}

// How a group of threads shares one row: a thread, a warp or the whole block per row.
enum class RowGroup { Thread, Warp, Block };

template <RowGroup G>
struct Rows {
  // This thread's rank in its group, the group size, its first row and the row stride.
  __device__ static int rank() {
    return G == RowGroup::Thread ? 0 : G == RowGroup::Warp ? threadIdx.x % kWarp : threadIdx.x;
  }
  __device__ static int size() {
    return G == RowGroup::Thread ? 1 : G == RowGroup::Warp ? kWarp : blockDim.x;
  }
  __device__ static int64_t first() {
    const int64_t b = blockIdx.x;
    if constexpr (G == RowGroup::Thread)
      return b * blockDim.x + threadIdx.x;
    else if constexpr (G == RowGroup::Warp)
      return b * (blockDim.x / kWarp) + threadIdx.x / kWarp;
    else
      return b;
  }
  __device__ static int64_t stride() {
    const int64_t g = gridDim.x;
    return G == RowGroup::Thread ? g * blockDim.x
           : G == RowGroup::Warp ? g * (blockDim.x / kWarp)
                                 : g;
  }
  template <class A, class F>
  __device__ static A allreduce(A v, const F& combine, A* smem) {
    if constexpr (G == RowGroup::Thread)
      return v;
    else if constexpr (G == RowGroup::Warp)
      return warp_allreduce(v, combine);
    else
      return block_allreduce(v, combine, smem);
  }
};

// Row kernels that loop over rows with a grid stride: a warp per row for short
// rows (8 rows per block), the block for long ones.
constexpr int64_t kWarpRowMax = 1024;
constexpr int kRowBlock = 256;
// Kernels declared __launch_bounds__(row_block_bound(G), 1) may get blocks of
// kRowBlockMax threads when there are fewer rows than multiprocessors (a few long rows).
constexpr int kRowBlockMax = 1024;
constexpr int row_block_bound(RowGroup g) {
  return g == RowGroup::Block ? kRowBlockMax : kRowBlock;
}

// How launch_rows shares rows among threads: a warp or a block per row (Groups), the
// same with wide blocks allowed (Wide, see row_block_bound), or a thread per row
// (Threads: rows strided in memory, whose loads coalesce across adjacent rows).
enum class RowLaunch { Groups, Wide, Threads };

int sm_count(Device device);  // multiprocessors of the device (cached)

// Blocks for `rows` rows in groups of `rows_per_block`, capped to a few waves.
inline unsigned row_grid(int64_t rows, int rows_per_block, Device device) {
  const int64_t want = (rows + rows_per_block - 1) / rows_per_block;
  const int64_t cap = static_cast<int64_t>(sm_count(device)) * 32;
  return static_cast<unsigned>(want < 1 ? 1 : (want < cap ? want : cap));
}

// Blocks of kBlock threads for a grid-stride loop over `work` items.
inline unsigned capped_grid(int64_t work, Device device) {
  const int64_t want = (work + kBlock - 1) / kBlock, cap = int64_t(sm_count(device)) * 32;
  return static_cast<unsigned>(want < 1 ? 1 : (want < cap ? want : cap));
}

// Calls launch(std::integral_constant<RowGroup, G>{}, grid, block, stream) for `rows`
// rows of length n: the thread variant for RowLaunch::Threads, else the warp variant
// for n <= kWarpRowMax and the block variant for longer rows.
template <class Launch>
void launch_rows(int64_t rows, int64_t n, Device device, const char* op, const Launch& launch,
                 RowLaunch how = RowLaunch::Groups) {
  if (rows == 0) return;
  const cudaStream_t stream = current_stream(device);
  if (how == RowLaunch::Threads) {
    launch(std::integral_constant<RowGroup, RowGroup::Thread>{}, capped_grid(rows, device), kBlock,
           stream);
  } else if (n <= kWarpRowMax) {
    launch(std::integral_constant<RowGroup, RowGroup::Warp>{},
           row_grid(rows, kRowBlock / kWarp, device), kRowBlock, stream);
  } else {
    const bool wide = how == RowLaunch::Wide && rows < sm_count(device);
    launch(std::integral_constant<RowGroup, RowGroup::Block>{}, row_grid(rows, 1, device),
           wide ? kRowBlockMax : kRowBlock, stream);
  }
  check_launch(op);
}

struct Plus {
  template <class A>
  __device__ A operator()(A a, A b) const {
    return a + b;
  }
};

// ---- the generic reduction ----

struct ReduceShape {
  int64_t outer = 1, n = 1, inner = 1;
};

// A contiguous `t` viewed as [outer, n, inner] around `dim` (n = 1 for a 0-dim tensor).
inline ReduceShape around_dim(const Tensor& t, int64_t dim) {
  ReduceShape s;
  for (int64_t d = 0; d < t.dim(); ++d)
    (d < dim ? s.outer : d == dim ? s.n : s.inner) *= t.sizes()[d];
  return s;
}

// `in` as a contiguous block for out (in's rank, size 1 on the reduced dims): `in`
// itself when it is contiguous and its reduced dims are one run ([outer, n, inner]),
// or two runs around the kept ones (below 2^31 elements), else a copy with the kept
// dims first and the reduced dims last, in order. k stays the row-major index over
// the reduced dims. `lead` > 1 marks the split form of the second case: the input is
// [lead, outer, n] and each output folds its lead * n elements (as a bias gradient
// sums NCHW over N, H and W); inner is 1 then.
inline Tensor reduce_input(const Tensor& out, const Tensor& in, ReduceShape& s, int64_t& lead) {
  s = ReduceShape{};
  lead = 1;
  const Tensor x = detach(in);
  if (x.is_contiguous()) {
    // Runs of reduced or kept dims and their extents (size-1 dims belong to none).
    std::vector<std::pair<bool, int64_t>> runs;
    for (int64_t d = 0; d < x.dim(); ++d) {
      const int64_t size = x.sizes()[d];
      if (size == 1) continue;
      const bool reduced = out.sizes()[d] == 1;
      if (!runs.empty() && runs.back().first == reduced)
        runs.back().second *= size;
      else
        runs.emplace_back(reduced, size);
    }
    const int64_t reduced_runs = std::count_if(runs.begin(), runs.end(),
                                               [](const auto& run) { return run.first; });
    if (reduced_runs <= 1) {
      bool seen = false;
      for (const auto& [reduced, extent] : runs) {
        (reduced ? s.n : seen ? s.inner : s.outer) *= extent;
        seen = seen || reduced;
      }
      return x;
    }
    if (runs.size() == 3 && runs[0].first && x.numel() > 0 && x.numel() < (int64_t(1) << 31)) {
      lead = runs[0].second, s.outer = runs[1].second, s.n = runs[2].second;
      return x;
    }
  }
  Shape perm;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (out.sizes()[d] != 1 || x.sizes()[d] == 1) perm.push_back(d);
  for (int64_t d = 0; d < x.dim(); ++d)
    if (out.sizes()[d] == 1 && x.sizes()[d] != 1) perm.push_back(d);
  for (int64_t d = 0; d < x.dim(); ++d) (out.sizes()[d] == 1 ? s.n : s.outer) *= x.sizes()[d];
  return contiguous(permute(x, perm));
}

template <class R>
using AccOf = decltype(std::declval<R>().init());

// Folds [k0, k1) of slice (o, j) into acc: input elements, or the accumulators of a
// first pass (then the slice holds chunk accumulators).
template <bool kPartialIn, class R, class In>
__device__ __forceinline__ AccOf<R> fold(const R& r, AccOf<R> acc, const In* x, int64_t base,
                                         int64_t stride, int64_t k0, int64_t k1, int step) {
  for (int64_t k = k0; k < k1; k += step) {
    if constexpr (kPartialIn)
      acc = r.combine(acc, x[base + k * stride]);
    else
      acc = r.reduce(acc, static_cast<MathT<In>>(x[base + k * stride]), k);
  }
  return acc;
}

// Rows: unit u = (o, chunk) folds [chunk * len, ...) of row o; the final pass stores,
// a first pass writes partial[u].
template <RowGroup G, bool kPartialIn, bool kPartialOut, class R, class In>
__global__ void __launch_bounds__(row_block_bound(G), 1)
    row_reduce(R r, const In* x, int64_t outer, int64_t n, int64_t chunks, int64_t len,
               AccOf<R>* partial, int64_t total_n) {
  using A = AccOf<R>;
  using Grp = Rows<G>;
  __shared__ A smem[kWarp];
  for (int64_t u = Grp::first(); u < outer * chunks; u += Grp::stride()) {
    const int64_t o = u / chunks, k0 = (u % chunks) * len;
    const int64_t k1 = k0 + len < n ? k0 + len : n;
    A acc = fold<kPartialIn>(r, r.init(), x, o * n, 1, k0 + Grp::rank(), k1, Grp::size());
    acc = Grp::allreduce(acc, [&](const A& a, const A& b) { return r.combine(a, b); }, smem);
    if (Grp::rank() == 0) {
      if constexpr (kPartialOut)
        partial[u] = acc;
      else
        r.store(o, acc, total_n);
    }
  }
}

// Columns: a 32 x 8 block covers 32 adjacent columns of one (o, chunk); its 8 rows of
// threads fold interleaved slices of the chunk, then merge through shared memory.
constexpr int kColX = 32, kColY = 8;

template <bool kPartialIn, bool kPartialOut, class R, class In>
__global__ void column_reduce(R r, const In* x, int64_t outer, int64_t n, int64_t inner,
                              int64_t chunks, int64_t len, AccOf<R>* partial, int64_t total_n) {
  using A = AccOf<R>;
  __shared__ A smem[kColY][kColX];
  const int64_t jblocks = (inner + kColX - 1) / kColX;
  for (int64_t b = blockIdx.x; b < outer * chunks * jblocks; b += gridDim.x) {
    const int64_t j = (b % jblocks) * kColX + threadIdx.x, u = b / jblocks;
    const int64_t o = u / chunks, k0 = (u % chunks) * len;
    const int64_t k1 = k0 + len < n ? k0 + len : n;
    A acc = r.init();
    if (j < inner)
      acc = fold<kPartialIn>(r, acc, x, o * n * inner + j, inner, k0 + threadIdx.y, k1, kColY);
    smem[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && j < inner) {
      for (int y = 1; y < kColY; ++y) acc = r.combine(acc, smem[y][threadIdx.x]);
      if constexpr (kPartialOut)
        partial[u * inner + j] = acc;
      else
        r.store(o * inner + j, acc, total_n);
    }
    __syncthreads();
  }
}

// The split form: x is [lead, outer, n]; unit u = (o, chunk) folds rows a in [a0, a1)
// of output o, x[a, o, 0:n] each, the block's threads across them V elements at a
// time (16-byte loads where n allows). All indices fit 32 bits (reduce_input).
template <bool kPartialOut, int V, class R, class In>
__global__ void __launch_bounds__(kRowBlock) split_reduce(R r, const In* x, uint32_t lead,
                                                          uint32_t outer, uint32_t n,
                                                          uint32_t chunks, uint32_t len,
                                                          FastDivmod row_vectors,
                                                          AccOf<R>* partial) {
  using A = AccOf<R>;
  __shared__ A smem[kWarp];
  for (uint32_t u = blockIdx.x; u < outer * chunks; u += gridDim.x) {
    const uint32_t o = u / chunks, a0 = (u % chunks) * len;
    const uint32_t vectors = (a0 + len < lead ? len : lead - a0) * (n / V);
    A acc = r.init();
    for (uint32_t i = threadIdx.x; i < vectors; i += blockDim.x) {
      const uint32_t row = row_vectors.div(i), a = a0 + row;
      const uint32_t b = row_vectors.mod(i, row) * V;
      const Vec<In, V> v =
          *reinterpret_cast<const Vec<In, V>*>(x + (int64_t(a) * outer + o) * n + b);
#pragma unroll
      for (int k = 0; k < V; ++k)
        acc = r.reduce(acc, static_cast<MathT<In>>(v.v[k]), int64_t(a) * n + b + k);
    }
    acc = block_allreduce(acc, [&](const A& p, const A& q) { return r.combine(p, q); }, smem);
    if (threadIdx.x == 0) {
      if constexpr (kPartialOut)
        partial[u] = acc;
      else
        r.store(o, acc, int64_t(lead) * n);
    }
  }
}

// Splits slices of n elements into chunks when there are too few slices (in units of
// `group` threads' work) to keep the GPU busy; returns the chunk count (1: no split).
inline int64_t reduce_chunks(int64_t slices, int64_t n, int64_t group, Device device) {
  const int64_t want = static_cast<int64_t>(sm_count(device)) * 8;  // groups in flight
  const int64_t min_len = group * 16;  // elements each chunk keeps its threads busy with
  if (slices >= want || n < 2 * min_len) return 1;
  int64_t chunks = (want + slices - 1) / slices;
  const int64_t most = (n + min_len - 1) / min_len;
  if (chunks > most) chunks = most;
  return chunks > 1024 ? 1024 : chunks;
}

// The second pass of a chunked row reduction: output o folds its `chunks` accumulators
// partial[o * chunks, ...) (chunks <= 1024: a warp per row); total_n is the element
// count each output stands for.
template <class R>
void fold_chunks(const R& r, const AccOf<R>* partial, int64_t outputs, int64_t chunks,
                 int64_t total_n, Device device, const char* op) {
  launch_rows(
      outputs, chunks, device, op,
      [&](auto g, unsigned blocks, int threads, cudaStream_t st) {
        constexpr RowGroup G = decltype(g)::value;
        row_reduce<G, true, false, R, AccOf<R>><<<blocks, threads, 0, st>>>(
            r, partial, outputs, chunks, 1, chunks, nullptr, total_n);
      },
      RowLaunch::Wide);
}

// The split form of launch_reduce: a first pass over chunks of lead rows when the
// outputs alone can't fill the GPU, then a pass over each output's chunk accumulators.
template <class In, class R>
void launch_split_reduce(const ReduceShape& s, int64_t lead, const In* x, const R& r,
                         Device device, const char* op) {
  using A = AccOf<R>;
  static_assert(16 % sizeof(In) == 0, "split_reduce loads 16-byte vectors");
  int64_t chunks = std::min(reduce_chunks(s.outer, lead * s.n, kRowBlock, device), lead);
  const int64_t len = (lead + chunks - 1) / chunks;
  chunks = (lead + len - 1) / len;
  Tensor scratch;
  A* partial = nullptr;
  if (chunks > 1) {
    scratch = empty({s.outer * chunks * static_cast<int64_t>(sizeof(A))}, ScalarType::UInt8, device);
    partial = reinterpret_cast<A*>(scratch.data_ptr());
  }
  const unsigned blocks = row_grid(s.outer * chunks, 1, device);
  const cudaStream_t stream = current_stream(device);
  constexpr int kVec = 16 / sizeof(In);
  const bool vectorized = s.n % kVec == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
  const auto first_pass = [&]<int V>(std::integral_constant<int, V>) {
    const auto u32 = [](int64_t v) { return static_cast<uint32_t>(v); };
    const FastDivmod row_vectors(u32(s.n / V));
    if (chunks == 1)
      split_reduce<false, V><<<blocks, kRowBlock, 0, stream>>>(
          r, x, u32(lead), u32(s.outer), u32(s.n), 1u, u32(len), row_vectors, partial);
    else
      split_reduce<true, V><<<blocks, kRowBlock, 0, stream>>>(
          r, x, u32(lead), u32(s.outer), u32(s.n), u32(chunks), u32(len), row_vectors, partial);
    check_launch(op);
  };
  if (vectorized)
    first_pass(std::integral_constant<int, kVec>{});
  else
    first_pass(std::integral_constant<int, 1>{});
  if (chunks > 1) fold_chunks(r, partial, s.outer, chunks, lead * s.n, device, op);
}

// Runs reducer r over `in` (any layout) into outputs of out's shape (see the Note).
template <class In, class R>
void launch_reduce(const Tensor& out, const Tensor& in, const R& r, const char* op) {
  using A = AccOf<R>;
  ReduceShape s;
  int64_t lead;
  const Tensor xt = reduce_input(out, in, s, lead);
  const int64_t outputs = s.outer * s.inner;
  if (outputs == 0) return;
  const Device device = in.device();
  DeviceGuard guard(device);
  const cudaStream_t stream = current_stream(device);
  const In* x = reinterpret_cast<const In*>(xt.data_ptr());
  const unsigned cap = static_cast<unsigned>(sm_count(device)) * 32;
  auto grid = [cap](int64_t blocks) {
    return static_cast<unsigned>(blocks < 1 ? 1 : (blocks < cap ? blocks : cap));
  };
  if (lead > 1) {
    launch_split_reduce(s, lead, x, r, device, op);
    return;
  }
  if (s.inner == 1) {
    const int64_t group = s.n <= kWarpRowMax ? kWarp : kRowBlock;
    const int64_t chunks = reduce_chunks(s.outer, s.n, group, device);
    const int64_t len = (s.n + chunks - 1) / chunks;
    Tensor scratch;
    A* partial = nullptr;
    if (chunks > 1) {
      scratch =
          empty({s.outer * chunks * static_cast<int64_t>(sizeof(A))}, ScalarType::UInt8, device);
      partial = reinterpret_cast<A*>(scratch.data_ptr());
    }
    launch_rows(
        s.outer * chunks, len, device, op,
        [&](auto g, unsigned blocks, int threads, cudaStream_t st) {
          constexpr RowGroup G = decltype(g)::value;
          if (chunks == 1)
            row_reduce<G, false, false, R, In>
                <<<blocks, threads, 0, st>>>(r, x, s.outer, s.n, 1, len, nullptr, s.n);
          else
            row_reduce<G, false, true, R, In>
                <<<blocks, threads, 0, st>>>(r, x, s.outer, s.n, chunks, len, partial, s.n);
        },
        RowLaunch::Wide);
    if (chunks == 1) return;
    fold_chunks(r, partial, s.outer, chunks, s.n, device, op);
    return;
  }
  const int64_t jblocks = (s.inner + kColX - 1) / kColX;
  const int64_t chunks = reduce_chunks(s.outer * jblocks, s.n, kColY, device);
  const dim3 block(kColX, kColY);
  if (chunks == 1) {
    column_reduce<false, false, R, In><<<grid(s.outer * jblocks), block, 0, stream>>>(
        r, x, s.outer, s.n, s.inner, 1, s.n, nullptr, s.n);
    check_launch(op);
    return;
  }
  const int64_t len = (s.n + chunks - 1) / chunks;
  const Tensor scratch =
      empty({outputs * chunks * static_cast<int64_t>(sizeof(A))}, ScalarType::UInt8, device);
  A* partial = reinterpret_cast<A*>(scratch.data_ptr());
  column_reduce<false, true, R, In><<<grid(s.outer * chunks * jblocks), block, 0, stream>>>(
      r, x, s.outer, s.n, s.inner, chunks, len, partial, s.n);
  check_launch(op);
  column_reduce<true, false, R, A><<<grid(s.outer * jblocks), block, 0, stream>>>(
      r, partial, s.outer, chunks, s.inner, 1, chunks, nullptr, s.n);
  check_launch(op);
}

}  // namespace kiln::cuda
