// Fused normalization kernels shared by layer/rms/group/batch norm (see Note [Norm layout]).
#include "kiln/ops/norm.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <vector>

#include "kiln/dispatch.h"
#include "kiln/dtype_dispatch.h"
#include "kiln/parallel.h"

namespace kiln::cpu {
namespace {

using normalization::Layout;

// Sum of f(i) over [0, n) in independent lanes, so the compiler can vectorize it.
template <class F>
inline double lane_sum(int64_t n, const F& f) {
  double acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += f(i + j);
  double s = 0;
  for (; i < n; ++i) s += f(i);
  for (double a : acc) s += a;
  return s;
}

int64_t row_grain(const Layout& L) {
  return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, L.B * L.K));
}

// Offset of block b of group r, and the weight index of its first element.
inline int64_t block_offset(const Layout& L, int64_t b, int64_t r) { return (b * L.R + r) * L.K; }
inline int64_t first_weight(const Layout& L, int64_t r) { return (r % L.P) * (L.K / L.S); }

// out = (x - mean) * rstd * w + b per group. Writes mean, rstd (and the biased var
// when `var` is defined) unless `given_stats`, where mean and var are inputs.
void norm_forward_kernel(const Tensor& out, const Tensor& mean, const Tensor& rstd,
                         const Tensor& var, const Tensor& x, const Tensor& w, const Tensor& b,
                         Layout L, double eps, bool rms, bool given_stats) {
  visit_floating(x.dtype(), "norm", [&]<class T>(TypeTag<T>) {
    using S = OpMath<T>;
    const T* wp = w.defined() ? w.data<T>() : nullptr;
    const T* bp = b.defined() ? b.data<T>() : nullptr;
    S* mp = mean.data<S>();
    S* rp = rstd.data<S>();
    S* vp = var.defined() ? var.data<S>() : nullptr;
    const double n = static_cast<double>(L.B * L.K);
    parallel_for(0, L.R, row_grain(L), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        double m = 0, v = 0;
        if (given_stats) {
          m = mp[r];
          v = vp[r];
        } else {
          for (int64_t blk = 0; blk < L.B && !rms; ++blk) {
            const T* xr = x.data<T>() + block_offset(L, blk, r);
            m += lane_sum(L.K, [&](int64_t i) { return double(static_cast<S>(xr[i])); });
          }
          m = rms ? 0.0 : m / n;
          for (int64_t blk = 0; blk < L.B; ++blk) {
            const T* xr = x.data<T>() + block_offset(L, blk, r);
            v += lane_sum(L.K, [&](int64_t i) {
              const double d = double(static_cast<S>(xr[i])) - m;
              return d * d;
            });
          }
          v = n > 0 ? v / n : v;
          mp[r] = static_cast<S>(m);
          if (vp) vp[r] = static_cast<S>(v);
        }
        const S rs = static_cast<S>(1.0 / std::sqrt(v + eps)), ms = static_cast<S>(m);
        rp[r] = rs;
        const int64_t a0 = first_weight(L, r);
        for (int64_t blk = 0; blk < L.B; ++blk) {
          const T* xr = x.data<T>() + block_offset(L, blk, r);
          T* yr = out.data<T>() + block_offset(L, blk, r);
          if (L.S == 1) {  // the weight index moves with the element
            for (int64_t k = 0; k < L.K; ++k) {
              S y = (static_cast<S>(xr[k]) - ms) * rs;
              if (wp) y *= static_cast<S>(wp[a0 + k]);
              if (bp) y += static_cast<S>(bp[a0 + k]);
              yr[k] = static_cast<T>(y);
            }
            continue;
          }
          for (int64_t c = 0; c < L.K / L.S; ++c) {  // one weight per run of S elements
            const S scale = rs * (wp ? static_cast<S>(wp[a0 + c]) : S(1));
            const S shift = (bp ? static_cast<S>(bp[a0 + c]) : S(0)) - ms * scale;
            const T* xs = xr + c * L.S;
            T* ys = yr + c * L.S;
            for (int64_t i = 0; i < L.S; ++i)
              ys[i] = static_cast<T>(static_cast<S>(xs[i]) * scale + shift);
          }
        }
      }
    });
  });
}

// Gradients of norm_forward. gx, gw, gb may each be undefined (not needed). With
// `given_stats` the statistics are constants (batch norm in eval mode).
void norm_backward_kernel(const Tensor& gx, const Tensor& gw, const Tensor& gb, const Tensor& g,
                          const Tensor& x, const Tensor& mean, const Tensor& rstd, const Tensor& w,
                          Layout L, bool rms, bool given_stats) {
  visit_floating(x.dtype(), "norm", [&]<class T>(TypeTag<T>) {
    using S = OpMath<T>;
    const T* wp = w.defined() ? w.data<T>() : nullptr;
    const S* mp = mean.data<S>();
    const S* rp = rstd.data<S>();
    const int64_t nw = gw.defined() ? gw.numel() : gb.defined() ? gb.numel() : 0;
    // Per-chunk partial sums, merged in row order so results don't depend on timing.
    std::vector<std::pair<int64_t, std::vector<double>>> parts;
    std::mutex merge;
    const double n = static_cast<double>(L.B * L.K);
    const int64_t channels = L.K / L.S;
    parallel_for(0, L.R, row_grain(L), [&](int64_t r0, int64_t r1) {
      std::vector<double> part(2 * nw, 0.0);
      double* part_w = part.data();
      double* part_b = part_w + nw;
      for (int64_t r = r0; r < r1; ++r) {
        const S m = mp[r], rs = rp[r];
        const int64_t a0 = first_weight(L, r);
        auto wt = [&](int64_t a) { return wp ? static_cast<S>(wp[a]) : S(1); };
        // s1 = sum(g * w), s2 = sum(g * w * xhat) over the group.
        double s1 = 0, s2 = 0;
        for (int64_t blk = 0; blk < L.B; ++blk) {
          const T* xr = x.data<T>() + block_offset(L, blk, r);
          const T* gr = g.data<T>() + block_offset(L, blk, r);
          auto xhat = [&](int64_t i) { return (static_cast<S>(xr[i]) - m) * rs; };
          if (L.S == 1) {
            if (nw) {
              for (int64_t k = 0; k < L.K; ++k) {
                const S gi = static_cast<S>(gr[k]);
                part_w[a0 + k] += gi * xhat(k);
                part_b[a0 + k] += gi;
              }
            }
            s1 += lane_sum(L.K,
                           [&](int64_t k) { return double(static_cast<S>(gr[k]) * wt(a0 + k)); });
            s2 += lane_sum(L.K, [&](int64_t k) {
              return double(static_cast<S>(gr[k]) * wt(a0 + k) * xhat(k));
            });
            continue;
          }
          for (int64_t c = 0; c < channels; ++c) {
            const int64_t o = c * L.S;
            const double gsum =
                lane_sum(L.S, [&](int64_t i) { return double(static_cast<S>(gr[o + i])); });
            const double gxsum = lane_sum(
                L.S, [&](int64_t i) { return double(static_cast<S>(gr[o + i]) * xhat(o + i)); });
            if (nw) {
              part_w[a0 + c] += gxsum;
              part_b[a0 + c] += gsum;
            }
            s1 += wt(a0 + c) * gsum;
            s2 += wt(a0 + c) * gxsum;
          }
        }
        if (!gx.defined()) continue;
        const S c1 = (rms || given_stats) ? S(0) : static_cast<S>(s1 / n);
        const S c2 = given_stats ? S(0) : static_cast<S>(s2 / n);
        for (int64_t blk = 0; blk < L.B; ++blk) {
          const T* xr = x.data<T>() + block_offset(L, blk, r);
          const T* gr = g.data<T>() + block_offset(L, blk, r);
          T* dr = gx.data<T>() + block_offset(L, blk, r);
          for (int64_t c = 0; c < (L.S == 1 ? 1 : channels); ++c) {
            const int64_t o = c * L.S, len = L.S == 1 ? L.K : L.S;
            for (int64_t i = 0; i < len; ++i) {
              const S wi = wt(a0 + (L.S == 1 ? i : c));
              const S xh = (static_cast<S>(xr[o + i]) - m) * rs;
              dr[o + i] = static_cast<T>(rs * (static_cast<S>(gr[o + i]) * wi - c1 - xh * c2));
            }
          }
        }
      }
      if (!nw) return;
      std::lock_guard<std::mutex> lock(merge);
      parts.emplace_back(r0, std::move(part));
    });
    if (!nw) return;
    std::sort(parts.begin(), parts.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<double> total(2 * nw, 0.0);
    for (const auto& [r0, part] : parts)
      for (int64_t a = 0; a < 2 * nw; ++a) total[a] += part[a];
    if (gw.defined())
      for (int64_t a = 0; a < nw; ++a) gw.data<T>()[a] = static_cast<T>(total[a]);
    if (gb.defined())
      for (int64_t a = 0; a < nw; ++a) gb.data<T>()[a] = static_cast<T>(total[nw + a]);
  });
}

// out = 1 / sqrt(in + eps), both contiguous.
void norm_rsqrt_kernel(const Tensor& out, const Tensor& in, double eps) {
  visit_floating(in.dtype(), "norm", [&]<class T>(TypeTag<T>) {
    using S = OpMath<T>;
    const T* ip = in.data<T>();
    T* op = out.data<T>();
    for (int64_t i = 0; i < in.numel(); ++i)
      op[i] = static_cast<T>(S(1) / std::sqrt(static_cast<S>(ip[i]) + static_cast<S>(eps)));
  });
}

}  // namespace

KILN_REGISTER_KERNEL(norm_rsqrt, CPU, norm_rsqrt_kernel);
KILN_REGISTER_KERNEL(norm_forward, CPU, norm_forward_kernel);
KILN_REGISTER_KERNEL(norm_backward, CPU, norm_backward_kernel);

}  // namespace kiln::cpu
