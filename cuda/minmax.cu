// max/min reductions with indices, and the one-hot mask their backward scatters
// through (see cpu/minmax.cpp for the semantics: NaN wins; among equal values the
// first index wins, as in PyTorch).
#include <limits>

#include "kiln/dispatch.h"
#include "reduce.cuh"

namespace kiln::cuda {
namespace {

template <class C>
__device__ __forceinline__ bool is_nan(C v) {
  return v != v;  // false for integers
}

template <class C, bool kMax>
__device__ __forceinline__ bool better(C a, C b) {
  return kMax ? a > b : a < b;
}

template <class C, bool kMax>
__device__ __forceinline__ C worst() {
  if constexpr (std::is_floating_point_v<C>)
    return kMax ? -std::numeric_limits<C>::infinity() : std::numeric_limits<C>::infinity();
  else
    return kMax ? std::numeric_limits<C>::lowest() : std::numeric_limits<C>::max();
}

template <class C>
struct Best {
  C v;
  int64_t i;
};

// Values and indices. The init's index 0 is right whenever it survives: then every
// element of the slice equals `worst`.
template <class T, bool kMax>
struct BestReducer {
  using C = MathT<T>;
  T* values;  // may be null
  int64_t* indices;
  __device__ Best<C> init() const { return {worst<C, kMax>(), 0}; }
  __device__ Best<C> reduce(Best<C> a, C v, int64_t i) const {
    if (is_nan(a.v)) return a;
    return (is_nan(v) || better<C, kMax>(v, a.v)) ? Best<C>{v, i} : a;
  }
  __device__ Best<C> combine(const Best<C>& a, const Best<C>& b) const {
    if (is_nan(a.v) != is_nan(b.v)) return is_nan(a.v) ? a : b;
    if (is_nan(a.v) || a.v == b.v) return a.i <= b.i ? a : b;
    return better<C, kMax>(a.v, b.v) ? a : b;
  }
  __device__ void store(int64_t o, const Best<C>& a, int64_t) const {
    if (values) values[o] = convert<T>(a.v);
    indices[o] = a.i;
  }
};

// Values only (amax/amin): a plain select; NaN is sticky because nothing compares
// greater than it and v != v only for NaN.
template <class T, bool kMax>
struct ExtremeReducer {
  using C = MathT<T>;
  T* values;
  __device__ C init() const { return worst<C, kMax>(); }
  __device__ C pick(C a, C v) const { return (better<C, kMax>(v, a) || is_nan(v)) ? v : a; }
  __device__ C reduce(C a, C v, int64_t) const { return pick(a, v); }
  __device__ C combine(C a, C v) const { return pick(a, v); }
  __device__ void store(int64_t o, C a, int64_t) const { values[o] = convert<T>(a); }
};

// out[r, k, j] = index[r, j] == k over out viewed as [outer, n, inner].
__global__ void index_mask_kernel(bool* out, const int64_t* index, int64_t numel, int64_t n,
                                  int64_t inner) {
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < numel;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t j = e % inner, k = (e / inner) % n, r = e / (inner * n);
    out[e] = index[r * inner + j] == k;
  }
}

}  // namespace

void minmax_cuda(const Tensor& values, const Tensor& indices, const Tensor& in, bool is_max) {
  const Tensor& out = values.defined() ? values : indices;
  visit_dtype(in.dtype(), [&]<class K>(TypeTag<K>) {
    using T = DeviceT<K>;
    T* vo = values.defined() ? reinterpret_cast<T*>(values.data_ptr()) : nullptr;
    int64_t* io = indices.defined() ? indices.data<int64_t>() : nullptr;
    if (!io) {
      if (is_max)
        launch_reduce<T>(out, in, ExtremeReducer<T, true>{vo}, "max");
      else
        launch_reduce<T>(out, in, ExtremeReducer<T, false>{vo}, "min");
    } else if (is_max) {
      launch_reduce<T>(out, in, BestReducer<T, true>{vo, io}, "max");
    } else {
      launch_reduce<T>(out, in, BestReducer<T, false>{vo, io}, "min");
    }
  });
}

// out (bool, contiguous, `in`'s full shape) = position along `dim` equals index
// (keepdim-shaped, int64, contiguous).
void index_mask_cuda(const Tensor& out, const Tensor& index, int64_t dim) {
  const ReduceShape s = around_dim(out, dim);
  const int64_t numel = out.numel();
  if (numel == 0) return;
  DeviceGuard guard(out.device());
  index_mask_kernel<<<capped_grid(numel, out.device()), kBlock, 0, current_stream(out.device())>>>(
      out.data<bool>(), index.data<int64_t>(), numel, s.n, s.inner);
  check_launch("_reduce_index_mask");
}

KILN_REGISTER_KERNEL(minmax, CUDA, minmax_cuda);
KILN_REGISTER_KERNEL(_reduce_index_mask, CUDA, index_mask_cuda);

}  // namespace kiln::cuda
