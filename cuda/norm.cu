// Fused normalization kernels shared by layer/rms/group/batch norm (see Note
// [Norm layout] in kiln/ops/norm.h: the input is [B, R, K], group r normalizes
// its B*K elements, element (r, k) scales with weight (r % P) * (K / S) + k / S).
// Group statistics and gradient sums accumulate in double, as cpu/norm.cpp does.
// A warp or a block per group for the statistics and the input gradient; the
// weight/bias gradients sum over groups per weight: 32 adjacent weights x 8
// slices per block when S == 1 (layer/rms norm), else a block per weight.
#include <cmath>

#include "kiln/dispatch.h"
#include "kiln/ops/norm.h"
#include "reduce.cuh"

namespace kiln::cuda {
namespace {

using normalization::Layout;

struct Sums {  // two sums at once
  double a, b;
};
struct AddSums {
  __device__ Sums operator()(const Sums& x, const Sums& y) const { return {x.a + y.a, x.b + y.b}; }
};

// Offset of element t (< B*K) of group r, and the weight index of element k of group r.
__device__ __forceinline__ int64_t element(const Layout& L, int64_t r, int64_t t) {
  return ((t / L.K) * L.R + r) * L.K + t % L.K;
}
__device__ __forceinline__ int64_t weight_index(const Layout& L, int64_t r, int64_t k) {
  return (r % L.P) * (L.K / L.S) + k / L.S;
}

template <RowGroup G, class T>
__global__ void __launch_bounds__(row_block_bound(G), 1)
    norm_forward_groups(T* y, MathT<T>* mean, MathT<T>* rstd, MathT<T>* var, const T* x, const T* w,
                        const T* b, Layout L, double eps, bool rms, bool given) {
  using S = MathT<T>;
  using Grp = Rows<G>;
  __shared__ double smem[kWarp];
  const int64_t count = L.B * L.K;
  const double n = static_cast<double>(count);
  for (int64_t r = Grp::first(); r < L.R; r += Grp::stride()) {
    double m = 0, v = 0;
    if (given) {
      m = mean[r];
      v = var[r];
    } else {
      if (!rms) {
        for (int64_t t = Grp::rank(); t < count; t += Grp::size())
          m += static_cast<double>(static_cast<S>(x[element(L, r, t)]));
        m = Grp::allreduce(m, Plus{}, smem) / n;
      }
      for (int64_t t = Grp::rank(); t < count; t += Grp::size()) {
        const double d = static_cast<double>(static_cast<S>(x[element(L, r, t)])) - m;
        v += d * d;
      }
      v = Grp::allreduce(v, Plus{}, smem);
      v = n > 0 ? v / n : v;
      if (Grp::rank() == 0) {
        mean[r] = static_cast<S>(m);
        if (var) var[r] = static_cast<S>(v);
      }
    }
    const S rs = static_cast<S>(1.0 / sqrt(v + eps)), ms = static_cast<S>(m);
    if (Grp::rank() == 0) rstd[r] = rs;
    for (int64_t t = Grp::rank(); t < count; t += Grp::size()) {
      const int64_t e = element(L, r, t), a = weight_index(L, r, t % L.K);
      S out = (static_cast<S>(x[e]) - ms) * rs;
      if (w) out *= static_cast<S>(w[a]);
      if (b) out += static_cast<S>(b[a]);
      y[e] = convert<T>(out);
    }
  }
}

// The input gradient: rstd * (g * w - c1 - xhat * c2) with c1 = mean(g * w) and
// c2 = mean(g * w * xhat) over the group (c1 = 0 for rms norm, both 0 for given stats).
template <RowGroup G, class T>
__global__ void __launch_bounds__(row_block_bound(G), 1)
    norm_input_grad(T* gx, const T* g, const T* x, const MathT<T>* mean, const MathT<T>* rstd,
                    const T* w, Layout L, bool rms, bool given) {
  using S = MathT<T>;
  using Grp = Rows<G>;
  __shared__ Sums smem[kWarp];
  const int64_t count = L.B * L.K;
  const double n = static_cast<double>(count);
  for (int64_t r = Grp::first(); r < L.R; r += Grp::stride()) {
    const S m = mean[r], rs = rstd[r];
    Sums s{0.0, 0.0};
    if (!given) {
      for (int64_t t = Grp::rank(); t < count; t += Grp::size()) {
        const int64_t e = element(L, r, t);
        const S gw =
            static_cast<S>(g[e]) * (w ? static_cast<S>(w[weight_index(L, r, t % L.K)]) : S(1));
        s.a += static_cast<double>(gw);
        s.b += static_cast<double>(gw * ((static_cast<S>(x[e]) - m) * rs));
      }
      s = Grp::allreduce(s, AddSums{}, smem);
    }
    const S c1 = (rms || given) ? S(0) : static_cast<S>(s.a / n);
    const S c2 = given ? S(0) : static_cast<S>(s.b / n);
    for (int64_t t = Grp::rank(); t < count; t += Grp::size()) {
      const int64_t e = element(L, r, t);
      const S wi = w ? static_cast<S>(w[weight_index(L, r, t % L.K)]) : S(1);
      const S xh = (static_cast<S>(x[e]) - m) * rs;
      gx[e] = convert<T>(rs * (static_cast<S>(g[e]) * wi - c1 - xh * c2));
    }
  }
}

// The weight/bias gradients: per weight a, sums of g * xhat and of g over its
// contributions, written as partial sums per chunk of contributions (partial[chunk * nw
// + a]), which param_grad_finish adds up in chunk order (deterministic, unlike atomics).
//
// S == 1: contribution t (< (R / P) * B) to weight a is element a % K of block t % B of
// group a / K + P * (t / B). Blocks of 32 adjacent weights x 8 interleaved contributions.
template <class T>
__global__ void param_grad_columns(Sums* partial, const T* g, const T* x, const MathT<T>* mean,
                                   const MathT<T>* rstd, Layout L, int64_t chunks, int64_t len) {
  using S = MathT<T>;
  __shared__ Sums smem[kColY][kColX];
  const int64_t nw = L.P * L.K, per = (L.R / L.P) * L.B, jblocks = (nw + kColX - 1) / kColX;
  for (int64_t blk = blockIdx.x; blk < jblocks * chunks; blk += gridDim.x) {
    const int64_t a = (blk % jblocks) * kColX + threadIdx.x, chunk = blk / jblocks;
    const int64_t t1 = (chunk + 1) * len < per ? (chunk + 1) * len : per;
    Sums s{0.0, 0.0};
    if (a < nw) {
      for (int64_t t = chunk * len + threadIdx.y; t < t1; t += kColY) {
        const int64_t r = a / L.K + L.P * (t / L.B), e = ((t % L.B) * L.R + r) * L.K + a % L.K;
        const S gv = static_cast<S>(g[e]);
        s.a += static_cast<double>(gv * ((static_cast<S>(x[e]) - mean[r]) * rstd[r]));
        s.b += static_cast<double>(gv);
      }
    }
    smem[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && a < nw) {
      for (int y = 1; y < kColY; ++y) s = AddSums{}(s, smem[y][threadIdx.x]);
      partial[chunk * nw + a] = s;
    }
    __syncthreads();
  }
}

// S > 1: a block per weight a = p * (K / S) + c (one chunk); contribution t
// (< (R / P) * B * S) is element c * S + t % S of block (t / S) % B of group
// p + P * (t / S / B).
template <class T>
__global__ void param_grad_blocks(Sums* partial, const T* g, const T* x, const MathT<T>* mean,
                                  const MathT<T>* rstd, Layout L) {
  using S = MathT<T>;
  __shared__ Sums smem[kWarp];
  const int64_t channels = L.K / L.S, nw = L.P * channels, per = (L.R / L.P) * L.B * L.S;
  for (int64_t a = blockIdx.x; a < nw; a += gridDim.x) {
    const int64_t p = a / channels, c = a % channels;
    Sums s{0.0, 0.0};
    for (int64_t t = threadIdx.x; t < per; t += blockDim.x) {
      const int64_t qb = t / L.S, r = p + L.P * (qb / L.B);
      const int64_t e = ((qb % L.B) * L.R + r) * L.K + c * L.S + t % L.S;
      const S gv = static_cast<S>(g[e]);
      s.a += static_cast<double>(gv * ((static_cast<S>(x[e]) - mean[r]) * rstd[r]));
      s.b += static_cast<double>(gv);
    }
    s = block_allreduce(s, AddSums{}, smem);
    if (threadIdx.x == 0) partial[a] = s;
  }
}

template <class T>
__global__ void param_grad_finish(T* gw, T* gb, const Sums* partial, int64_t nw, int64_t chunks) {
  for (int64_t a = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; a < nw;
       a += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    Sums s{0.0, 0.0};
    for (int64_t c = 0; c < chunks; ++c) s = AddSums{}(s, partial[c * nw + a]);
    if (gw) gw[a] = convert<T>(s.a);
    if (gb) gb[a] = convert<T>(s.b);
  }
}

template <class T>
T* typed(const Tensor& t) {
  return t.defined() ? reinterpret_cast<T*>(t.data_ptr()) : nullptr;
}

struct RsqrtEps {
  double eps;
  template <class C>
  __device__ C operator()(C v) const {
    return C(1) / sqrt(v + static_cast<C>(eps));
  }
};

}  // namespace

// out = (x - mean) * rstd * w + b per group. Writes mean, rstd (and the biased var
// when `var` is defined) unless `given_stats`, where mean and var are inputs.
void norm_forward_cuda(const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& var,
                       const Tensor& x, const Tensor& w, const Tensor& b, Layout L, double eps,
                       bool rms, bool given_stats) {
  visit_floating(x.dtype(), "norm", [&]<class K>(TypeTag<K>) {
    using T = DeviceT<K>;
    using S = MathT<T>;
    const Device device = x.device();
    DeviceGuard guard(device);
    launch_rows(
        L.R, L.B * L.K, device, "norm",
        [&](auto g, unsigned blocks, int threads, cudaStream_t st) {
          norm_forward_groups<decltype(g)::value, T><<<blocks, threads, 0, st>>>(
              typed<T>(out), typed<S>(mean), typed<S>(rstd), typed<S>(var), typed<const T>(x),
              typed<const T>(w), typed<const T>(b), L, eps, rms, given_stats);
        },
        RowLaunch::Wide);
  });
}

// Gradients of norm_forward. gx, gw, gb may each be undefined (not needed). With
// `given_stats` the statistics are constants (batch norm in eval mode).
void norm_backward_cuda(const Tensor& gx, const Tensor& gw, const Tensor& gb, const Tensor& g,
                        const Tensor& x, const Tensor& mean, const Tensor& rstd, const Tensor& w,
                        Layout L, bool rms, bool given_stats) {
  visit_floating(x.dtype(), "norm", [&]<class K>(TypeTag<K>) {
    using T = DeviceT<K>;
    using S = MathT<T>;
    const Device device = x.device();
    DeviceGuard guard(device);
    const cudaStream_t stream = current_stream(device);
    if (gx.defined()) {
      launch_rows(
          L.R, L.B * L.K, device, "norm",
          [&](auto grp, unsigned blocks, int threads, cudaStream_t st) {
            norm_input_grad<decltype(grp)::value, T><<<blocks, threads, 0, st>>>(
                typed<T>(gx), typed<const T>(g), typed<const T>(x), typed<const S>(mean),
                typed<const S>(rstd), typed<const T>(w), L, rms, given_stats);
          },
          RowLaunch::Wide);
    }
    if (!gw.defined() && !gb.defined()) return;
    // The parameters' size, as on the CPU: P * (K / S) is 1 for a batch norm of no
    // channels (P = max(C, 1)) and 0 for a zero spatial size (K = 0).
    const int64_t nw = gw.defined() ? gw.numel() : gb.numel();
    if (nw == 0) return;
    if (L.K == 0) {  // no elements: the gradients are zeros
      for (const Tensor* t : {&gw, &gb})
        if (t->defined())
          check(cudaMemsetAsync(t->data_ptr(), 0, static_cast<size_t>(nw) * t->itemsize(), stream),
                "norm");
      return;
    }
    const unsigned cap = static_cast<unsigned>(sm_count(device)) * 32;
    int64_t chunks = 1;
    Tensor scratch;
    if (L.S == 1) {
      const int64_t per = (L.R / L.P) * L.B, jblocks = (nw + kColX - 1) / kColX;
      chunks = reduce_chunks(jblocks, per, kColY, device);
      const int64_t len = (per + chunks - 1) / chunks;
      scratch =
          empty({chunks * nw * static_cast<int64_t>(sizeof(Sums))}, ScalarType::UInt8, device);
      param_grad_columns<T><<<static_cast<unsigned>(std::min<int64_t>(jblocks * chunks, cap)),
                              dim3(kColX, kColY), 0, stream>>>(
          reinterpret_cast<Sums*>(scratch.data_ptr()), typed<const T>(g), typed<const T>(x),
          typed<const S>(mean), typed<const S>(rstd), L, chunks, len);
    } else {
      scratch = empty({nw * static_cast<int64_t>(sizeof(Sums))}, ScalarType::UInt8, device);
      param_grad_blocks<T>
          <<<static_cast<unsigned>(std::min<int64_t>(nw, cap)), kRowBlock, 0, stream>>>(
              reinterpret_cast<Sums*>(scratch.data_ptr()), typed<const T>(g), typed<const T>(x),
              typed<const S>(mean), typed<const S>(rstd), L);
    }
    check_launch("norm");
    param_grad_finish<T><<<capped_grid(nw, device), kBlock, 0, stream>>>(
        typed<T>(gw), typed<T>(gb), reinterpret_cast<const Sums*>(scratch.data_ptr()), nw, chunks);
    check_launch("norm");
  });
}

// out = 1 / sqrt(in + eps), both contiguous.
void norm_rsqrt_cuda(const Tensor& out, const Tensor& in, double eps) {
  TensorIter iter({out, in});
  visit_floating(in.dtype(), "norm", [&]<class K>(TypeTag<K>) {
    launch_elementwise<K, K, 1>(iter, out.device(), RsqrtEps{eps}, "norm");
  });
}

KILN_REGISTER_KERNEL(norm_rsqrt, CUDA, norm_rsqrt_cuda);
KILN_REGISTER_KERNEL(norm_forward, CUDA, norm_forward_cuda);
KILN_REGISTER_KERNEL(norm_backward, CUDA, norm_backward_cuda);

}  // namespace kiln::cuda
