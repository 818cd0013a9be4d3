// Fused normalization kernels shared by layer/rms/group/batch norm (see Note [Norm layout]).
#include <algorithm>
#include <cmath>
#include <mutex>
#include <vector>

#include "kiln/dispatch.h"
#include "kiln/dtype_dispatch.h"
#include "kiln/ops/norm.h"
#include "kiln/parallel.h"

namespace kiln::cpu {
namespace {

using norm::Layout;

// Calls f(element offset, weight index) for every element of group r.
template <class F>
inline void for_each_elem(const Layout& L, int64_t r, const F& f) {
  const int64_t channels = L.K / L.S, a0 = (r % L.P) * channels;
  for (int64_t b = 0; b < L.B; ++b) {
    const int64_t base = (b * L.R + r) * L.K;
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t s = 0; s < L.S; ++s) f(base + c * L.S + s, a0 + c);
  }
}

int64_t row_grain(const Layout& L) {
  return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, L.B * L.K));
}

// out = (x - mean) * rstd * w + b per group. Writes mean, rstd (and the biased var
// when `var` is defined) unless `given_stats`, where mean and var are inputs.
void norm_forward_kernel(const Tensor& out, const Tensor& mean, const Tensor& rstd,
                         const Tensor& var, const Tensor& x, const Tensor& w, const Tensor& b,
                         Layout L, double eps, bool rms, bool given_stats) {
  visit_floating(x.dtype(), "norm", [&]<class T>(TypeTag<T>) {
    using S = OpMath<T>;
    const T* xp = x.data<T>();
    const T* wp = w.defined() ? w.data<T>() : nullptr;
    const T* bp = b.defined() ? b.data<T>() : nullptr;
    T* op = out.data<T>();
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
          if (!rms) {
            for_each_elem(L, r, [&](int64_t i, int64_t) { m += static_cast<S>(xp[i]); });
            m /= n;
          }
          for_each_elem(L, r, [&](int64_t i, int64_t) {
            const double d = static_cast<S>(xp[i]) - m;
            v += d * d;
          });
          v = n > 0 ? v / n : v;
          mp[r] = static_cast<S>(m);
          if (vp) vp[r] = static_cast<S>(v);
        }
        const S rs = static_cast<S>(1.0 / std::sqrt(v + eps)), ms = static_cast<S>(m);
        rp[r] = rs;
        for_each_elem(L, r, [&](int64_t i, int64_t a) {
          S y = (static_cast<S>(xp[i]) - ms) * rs;
          if (wp) y *= static_cast<S>(wp[a]);
          if (bp) y += static_cast<S>(bp[a]);
          op[i] = static_cast<T>(y);
        });
      }
    });
  });
}

// Gradients of norm_forward. gx, gw, gb may each be undefined (not needed). With
// `given_stats` the statistics are constants (batch norm in eval mode).
void norm_backward_kernel(const Tensor& gx, const Tensor& gw, const Tensor& gb, const Tensor& g,
                          const Tensor& x, const Tensor& mean, const Tensor& rstd,
                          const Tensor& w, Layout L, bool rms, bool given_stats) {
  visit_floating(x.dtype(), "norm", [&]<class T>(TypeTag<T>) {
    using S = OpMath<T>;
    const T* xp = x.data<T>();
    const T* gp = g.data<T>();
    const T* wp = w.defined() ? w.data<T>() : nullptr;
    const S* mp = mean.data<S>();
    const S* rp = rstd.data<S>();
    T* gxp = gx.defined() ? gx.data<T>() : nullptr;
    const int64_t nw = gw.defined() ? gw.numel() : gb.defined() ? gb.numel() : 0;
    // Per-chunk partial sums, merged in row order so results don't depend on timing.
    std::vector<std::pair<int64_t, std::vector<double>>> parts;
    std::mutex merge;
    const double n = static_cast<double>(L.B * L.K);
    parallel_for(0, L.R, row_grain(L), [&](int64_t r0, int64_t r1) {
      std::vector<double> part(2 * nw, 0.0);
      double* part_w = part.data();
      double* part_b = part_w + nw;
      for (int64_t r = r0; r < r1; ++r) {
        const S m = mp[r], rs = rp[r];
        auto xhat = [&](int64_t i) { return (static_cast<S>(xp[i]) - m) * rs; };
        auto gscaled = [&](int64_t i, int64_t a) {
          const S gi = static_cast<S>(gp[i]);
          return wp ? gi * static_cast<S>(wp[a]) : gi;
        };
        if (nw) {
          for_each_elem(L, r, [&](int64_t i, int64_t a) {
            const double gi = static_cast<S>(gp[i]);
            part_w[a] += gi * xhat(i);
            part_b[a] += gi;
          });
        }
        if (!gxp) continue;
        if (given_stats) {
          for_each_elem(L, r, [&](int64_t i, int64_t a) {
            gxp[i] = static_cast<T>(gscaled(i, a) * rs);
          });
          continue;
        }
        double s1 = 0, s2 = 0;
        for_each_elem(L, r, [&](int64_t i, int64_t a) {
          const double gi = gscaled(i, a);
          s1 += gi;
          s2 += gi * xhat(i);
        });
        const S c1 = rms ? S(0) : static_cast<S>(s1 / n), c2 = static_cast<S>(s2 / n);
        for_each_elem(L, r, [&](int64_t i, int64_t a) {
          gxp[i] = static_cast<T>(rs * (gscaled(i, a) - c1 - xhat(i) * c2));
        });
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

}  // namespace

KILN_REGISTER_KERNEL(norm_forward, CPU, norm_forward_kernel);
KILN_REGISTER_KERNEL(norm_backward, CPU, norm_backward_kernel);

}  // namespace kiln::cpu
