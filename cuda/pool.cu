// Max and average pooling over (planes, H, W) windows described by a
// PoolGeometry (kiln/ops/pool.h), one thread per output element (forward) or
// per input element (average backward, a gather: no atomics, fixed order).
#include <type_traits>

#include "kiln/dispatch.h"
#include "kiln/ops/pool.h"
#include "nn_util.cuh"

namespace kiln::cuda {
namespace {

// The window table on the device: h_start, h_len (Ho each), w_start, w_len (Wo each).
struct Windows {
  const int64_t *h_start, *h_len, *w_start, *w_len;
};
Tensor window_table(const PoolGeometry& g, Device device) {
  std::vector<int64_t> v;
  for (const auto* part : {&g.h_start, &g.h_len, &g.w_start, &g.w_len})
    v.insert(v.end(), part->begin(), part->end());
  return to_device_table(v, ScalarType::Int64, device);
}
Windows windows(const Tensor& table, int64_t Ho, int64_t Wo) {
  const int64_t* t = table.data<int64_t>();
  return {t, t + Ho, t + 2 * Ho, t + 2 * Ho + Wo};
}

// Element e = (p * rows + y) * cols + x of contiguous (planes, rows, cols) blocks.
// Pooling kernels are mostly this index math: with I = uint32_t (the launch fits
// 2^31) it divides by multiply-high through `d`, else in 64 bits.
struct PlaneDivisors {
  FastDivmod rows, cols;
};
struct PlanePos {
  int64_t p, y, x;
};
template <class I>
__device__ __forceinline__ PlanePos plane_pos(I e, int64_t rows, int64_t cols,
                                              const PlaneDivisors& d) {
  if constexpr (std::is_same_v<I, uint32_t>) {
    const uint32_t q = d.cols.div(e), p = d.rows.div(q);
    return {p, d.rows.mod(q, p), d.cols.mod(e, q)};
  } else {
    return {e / (rows * cols), (e / cols) % rows, e % cols};
  }
}

// Calls f(I{}, divisors) with I = uint32_t where n elements of (rows, cols) planes fit
// FastDivmod's 2^31, else int64_t (divisors unused).
template <class F>
void with_plane_index(int64_t n, int64_t rows, int64_t cols, const F& f) {
  if (n < (int64_t(1) << 31) - kBlock)
    f(uint32_t{}, PlaneDivisors{FastDivmod(static_cast<uint32_t>(rows)),
                                FastDivmod(static_cast<uint32_t>(cols))});
  else
    f(int64_t{}, PlaneDivisors{});
}

// NaN wins (the last one seen, as on the CPU); a window with no tap inside
// the input gives 0 at index -1.
template <class T, class I>
__global__ void max_pool_fwd(I n, T* out, int64_t* indices, const T* in, Windows w, int64_t H,
                             int64_t W, int64_t Ho, int64_t Wo, PlaneDivisors div, int64_t step_h,
                             int64_t step_w) {
  const I e = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= n) return;
  using M = MathT<T>;
  const auto [p, oh, ow] = plane_pos(e, Ho, Wo, div);
  const T* plane = in + p * H * W;
  M best = M(0);
  int64_t at = -1;
  for (int64_t i = 0; i < w.h_len[oh]; ++i) {
    const int64_t h = w.h_start[oh] + i * step_h;
    if (h < 0 || h >= H) continue;
    for (int64_t j = 0; j < w.w_len[ow]; ++j) {
      const int64_t x = w.w_start[ow] + j * step_w;
      if (x < 0 || x >= W) continue;
      const M v = static_cast<M>(plane[h * W + x]);
      if (at < 0 || v > best || v != v) {
        best = v;
        at = h * W + x;
      }
    }
  }
  out[e] = convert<T>(best);
  indices[e] = at;
}

// acc (zeroed) += grad_out at each output's argmax. Where windows overlap, outputs
// may share an argmax (kShared): atomics, and A is float for 16-bit T, since up to
// k*k shares meet in one pixel and rounding each partial sum to 16 bits loses the
// result when they cancel. Disjoint windows each own their pixels: plain stores of T.
template <bool kShared, class T, class A, class I>
__global__ void max_pool_bwd(I n, A* acc, const T* grad_out, const int64_t* indices, int64_t HW,
                             int64_t L, PlaneDivisors div) {
  const I e = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= n || indices[e] < 0) return;
  A* at = acc + plane_pos(e, 1, L, div).p * HW + indices[e];
  if constexpr (kShared)
    atomicAdd(at, static_cast<A>(grad_out[e]));
  else
    *at = grad_out[e];
}

template <class M>
__device__ __forceinline__ M divisor(const double* div, int64_t Ho, double fixed, int64_t oh,
                                     int64_t ow) {
  return M(fixed != 0 ? fixed : div[oh] * div[Ho + ow]);
}

template <class T, class I>
__global__ void avg_pool_fwd(I n, T* out, const T* in, Windows w, const double* div, double fixed,
                             int64_t H, int64_t W, int64_t Ho, int64_t Wo, PlaneDivisors pd) {
  const I e = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= n) return;
  using M = MathT<T>;
  const auto [p, oh, ow] = plane_pos(e, Ho, Wo, pd);
  const T* plane = in + p * H * W;
  M acc = 0;
  for (int64_t h = w.h_start[oh]; h < w.h_start[oh] + w.h_len[oh]; ++h)
    for (int64_t x = w.w_start[ow]; x < w.w_start[ow] + w.w_len[ow]; ++x)
      acc += static_cast<M>(plane[h * W + x]);
  out[e] = convert<T>(acc / divisor<M>(div, Ho, fixed, oh, ow));
}

// Input pixel (h, x) collects the share of every output whose window holds
// it; `cover` lists, per input row then per input column, the range of
// outputs [lo, hi) to look at (windows are clipped to the input).
template <class T, class I>
__global__ void avg_pool_bwd(I n, T* grad_in, const T* grad_out, Windows w, const int64_t* cover,
                             const double* div, double fixed, int64_t H, int64_t W, int64_t Ho,
                             int64_t Wo, PlaneDivisors pd) {
  const I e = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= n) return;
  using M = MathT<T>;
  const auto [p, h, x] = plane_pos(e, H, W, pd);
  const int64_t* row_cover = cover;        // (H, 2)
  const int64_t* col_cover = cover + 2 * H;  // (W, 2)
  const T* go = grad_out + p * Ho * Wo;
  M acc = 0;
  for (int64_t oh = row_cover[2 * h]; oh < row_cover[2 * h + 1]; ++oh) {
    if (h < w.h_start[oh] || h >= w.h_start[oh] + w.h_len[oh]) continue;
    for (int64_t ow = col_cover[2 * x]; ow < col_cover[2 * x + 1]; ++ow) {
      if (x < w.w_start[ow] || x >= w.w_start[ow] + w.w_len[ow]) continue;
      acc += static_cast<M>(go[oh * Wo + ow]) / divisor<M>(div, Ho, fixed, oh, ow);
    }
  }
  grad_in[e] = convert<T>(acc);
}

// Per input index along one axis, the smallest and one past the largest
// window that contains it (an empty range when none does).
void add_cover(std::vector<int64_t>& cover, int64_t size, const std::vector<int64_t>& start,
               const std::vector<int64_t>& len) {
  const size_t base = cover.size();
  const int64_t none = static_cast<int64_t>(start.size());
  for (int64_t i = 0; i < size; ++i) cover.insert(cover.end(), {none, 0});
  for (int64_t o = 0; o < none; ++o)
    for (int64_t i = std::max<int64_t>(start[o], 0); i < std::min(start[o] + len[o], size); ++i) {
      cover[base + 2 * i] = std::min(cover[base + 2 * i], o);
      cover[base + 2 * i + 1] = std::max(cover[base + 2 * i + 1], o + 1);
    }
}

Tensor divisor_table(const PoolGeometry& g, Device device) {
  std::vector<double> v(g.h_div);
  v.insert(v.end(), g.w_div.begin(), g.w_div.end());
  return to_device_table(v, ScalarType::Float64, device);
}

}  // namespace

void max_pool_kernel(const Tensor& out, const Tensor& indices, const Tensor& input,
                     const PoolGeometry& g) {
  const int64_t n = out.numel(), Ho = out.size(1), Wo = out.size(2);
  if (n == 0) return;
  DeviceGuard guard(out.device());
  const Tensor table = window_table(g, out.device());
  visit_floating(input.dtype(), "max_pool", [&]<class K>(TypeTag<K>) {
    using T = DeviceT<K>;
    with_plane_index(n, Ho, Wo, [&]<class I>(I, const PlaneDivisors& div) {
      max_pool_fwd<<<blocks_for(n, "max_pool"), kBlock, 0, current_stream(out.device())>>>(
          static_cast<I>(n), static_cast<T*>(out.data_ptr()), indices.data<int64_t>(),
          static_cast<const T*>(input.data_ptr()), windows(table, Ho, Wo), g.height, g.width, Ho,
          Wo, div, g.step_h, g.step_w);
    });
    check_launch("max_pool");
  });
}

// With disjoint windows each input pixel gets one share at most: grad_in is zeroed
// and written in place. Else shares are summed with atomics, for 16-bit grads in a
// float buffer converted after.
void max_pool_backward_kernel(const Tensor& grad_in, const Tensor& grad_out, const Tensor& indices,
                              bool disjoint) {
  if (grad_in.numel() == 0) return;
  DeviceGuard guard(grad_in.device());
  const cudaStream_t stream = current_stream(grad_in.device());
  const bool wide = !disjoint && grad_in.itemsize() == 2;
  Tensor acc = wide ? empty(grad_in.sizes(), ScalarType::Float32, grad_in.device()) : grad_in;
  check(cudaMemsetAsync(acc.data_ptr(), 0, acc.numel() * acc.itemsize(), stream), "max_pool");
  const int64_t n = grad_out.numel(), L = grad_out.size(1) * grad_out.size(2);
  if (n > 0) {
    visit_floating(grad_in.dtype(), "max_pool", [&]<class K>(TypeTag<K>) {
      using T = DeviceT<K>;
      using Wide = std::conditional_t<sizeof(T) == 2, float, T>;
      with_plane_index(n, 1, L, [&]<class I>(I, const PlaneDivisors& div) {
        const auto launch = [&]<bool kShared, class A>() {
          max_pool_bwd<kShared, T, A><<<blocks_for(n, "max_pool"), kBlock, 0, stream>>>(
              static_cast<I>(n), static_cast<A*>(acc.data_ptr()),
              static_cast<const T*>(grad_out.data_ptr()), indices.data<int64_t>(),
              grad_in.size(1) * grad_in.size(2), L, div);
        };
        if (disjoint)
          launch.template operator()<false, T>();
        else
          launch.template operator()<true, Wide>();
      });
      check_launch("max_pool");
    });
  }
  if (wide) {
    Tensor out = grad_in;
    copy_(out, acc);
  }
}

void avg_pool_kernel(const Tensor& out, const Tensor& input, const PoolGeometry& g) {
  const int64_t n = out.numel(), Ho = out.size(1), Wo = out.size(2);
  if (n == 0) return;
  DeviceGuard guard(out.device());
  const Tensor table = window_table(g, out.device()), div = divisor_table(g, out.device());
  visit_floating(input.dtype(), "avg_pool", [&]<class K>(TypeTag<K>) {
    using T = DeviceT<K>;
    with_plane_index(n, Ho, Wo, [&]<class I>(I, const PlaneDivisors& pd) {
      avg_pool_fwd<<<blocks_for(n, "avg_pool"), kBlock, 0, current_stream(out.device())>>>(
          static_cast<I>(n), static_cast<T*>(out.data_ptr()), static_cast<const T*>(input.data_ptr()),
          windows(table, Ho, Wo), div.data<double>(), g.divisor, g.height, g.width, Ho, Wo, pd);
    });
    check_launch("avg_pool");
  });
}

void avg_pool_backward_kernel(const Tensor& grad_in, const Tensor& grad_out,
                              const PoolGeometry& g) {
  const int64_t n = grad_in.numel(), Ho = grad_out.size(1), Wo = grad_out.size(2);
  if (n == 0) return;
  DeviceGuard guard(grad_in.device());
  std::vector<int64_t> cover;
  add_cover(cover, g.height, g.h_start, g.h_len);
  add_cover(cover, g.width, g.w_start, g.w_len);
  const Tensor table = window_table(g, grad_in.device()), div = divisor_table(g, grad_in.device());
  const Tensor cover_d = to_device_table(cover, ScalarType::Int64, grad_in.device());
  visit_floating(grad_in.dtype(), "avg_pool", [&]<class K>(TypeTag<K>) {
    using T = DeviceT<K>;
    with_plane_index(n, g.height, g.width, [&]<class I>(I, const PlaneDivisors& pd) {
      avg_pool_bwd<<<blocks_for(n, "avg_pool"), kBlock, 0, current_stream(grad_in.device())>>>(
          static_cast<I>(n), static_cast<T*>(grad_in.data_ptr()),
          static_cast<const T*>(grad_out.data_ptr()), windows(table, Ho, Wo),
          cover_d.data<int64_t>(), div.data<double>(), g.divisor, g.height, g.width, Ho, Wo, pd);
    });
    check_launch("avg_pool");
  });
}

KILN_REGISTER_KERNEL(max_pool, CUDA, max_pool_kernel);
KILN_REGISTER_KERNEL(max_pool_backward, CUDA, max_pool_backward_kernel);
KILN_REGISTER_KERNEL(avg_pool, CUDA, avg_pool_kernel);
KILN_REGISTER_KERNEL(avg_pool_backward, CUDA, avg_pool_backward_kernel);

}  // namespace kiln::cuda
