// Fused cross-entropy / NLL kernels (see Note [Loss layout]).
#include "kiln/ops/loss.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kiln/cpu/vec_math.h"
#include "kiln/dispatch.h"
#include "kiln/dtype_dispatch.h"
#include "kiln/error.h"
#include "kiln/parallel.h"

namespace kiln::cpu {
namespace {

using loss::Layout;

// logsumexp of a contiguous row, each pass over independent lanes so it vectorizes.
template <class T, class S = OpMath<T>>
S contiguous_logsumexp(const T* x, int64_t n) {
  constexpr int64_t kLanes = 8;
  S lanes[kLanes];
  for (auto& l : lanes) l = -std::numeric_limits<S>::infinity();
  int64_t c = 0;
  for (; c + kLanes <= n; c += kLanes)
    for (int64_t j = 0; j < kLanes; ++j) {
      const S v = static_cast<S>(x[c + j]);
      lanes[j] = v > lanes[j] ? v : lanes[j];
    }
  S m = -std::numeric_limits<S>::infinity();
  for (; c < n; ++c) m = static_cast<S>(x[c]) > m ? static_cast<S>(x[c]) : m;
  for (S l : lanes) m = l > m ? l : m;
  // (NaNs skip the max but reach the sum, so the result is NaN as it should be.)
  if (std::isinf(m)) return m;
  S sums[kLanes] = {};
  c = 0;
  for (; c + kLanes <= n; c += kLanes)
    for (int64_t j = 0; j < kLanes; ++j) sums[j] += vexp(static_cast<S>(x[c + j]) - m);
  for (; c < n; ++c) sums[0] += vexp(static_cast<S>(x[c]) - m);
  S s = 0;
  for (S l : sums) s += l;
  return m + std::log(s);
}

// float32: the max by SSE (NaN-aware) and the sum of exps in a loop cloned for wider
// vector units, over 16 lanes so it vectorizes without reassociating.
KILN_TARGET_CLONES float sum_exp_f32(const float* x, int64_t n, float m) {
  constexpr int64_t kLanes = 16;
  float sums[kLanes] = {};
  int64_t c = 0;
  for (; c + kLanes <= n; c += kLanes)
    for (int64_t j = 0; j < kLanes; ++j) sums[j] += vexp(x[c + j] - m);
  for (; c < n; ++c) sums[0] += vexp(x[c] - m);
  float s = 0;
  for (float l : sums) s += l;
  return s;
}

template <>
float contiguous_logsumexp<float, float>(const float* x, int64_t n) {
  const float m = row_extreme<true>(x, n);
  if (std::isinf(m) || m != m) return m;
  return m + std::log(sum_exp_f32(x, n, m));
}

// scale * softmax of a contiguous float32 row whose logsumexp is z.
KILN_TARGET_CLONES void scaled_softmax_f32(const float* x, float* out, int64_t n, float z,
                                           float scale) {
  for (int64_t c = 0; c < n; ++c) out[c] = scale * vexp(x[c] - z);
}

// One row's view of the data, shared by forward and backward.
template <class T>
struct Row {
  using S = OpMath<T>;
  const Layout& L;
  const T* x;
  const T* w;  // null: every class weighs 1
  int64_t base;

  S at(int64_t c) const { return static_cast<S>(x[base + c * L.D]); }
  S weight(int64_t c) const { return w ? static_cast<S>(w[c]) : S(1); }
  // log(sum(exp(x))) by the max-shift, so large logits don't overflow.
  S logsumexp() const {
    if (L.log_probs) return S(0);
    if (L.D == 1) return contiguous_logsumexp(x + base, L.C);
    S m = -std::numeric_limits<S>::infinity();
    for (int64_t c = 0; c < L.C; ++c) m = std::max(m, at(c));
    if (std::isinf(m)) return m;
    S s = 0;
    for (int64_t c = 0; c < L.C; ++c) s += std::exp(at(c) - m);
    return m + std::log(s);
  }
  // The class index of an index target, or -1 when ignored.
  int64_t target_class(const int64_t* t, int64_t r) const {
    const int64_t v = t[r];
    if (v == L.ignore_index) return -1;
    KILN_CHECK(v >= 0 && v < L.C, IndexError, "[", L.op, "] target ", v, " is out of bounds for ",
               L.C, " classes");
    return v;
  }
  // Smoothed probability target of class c.
  S prob(const T* y, int64_t c) const {
    const S ls = static_cast<S>(L.label_smoothing);
    return static_cast<S>(y[base + c * L.D]) * (1 - ls) + ls / static_cast<S>(L.C);
  }
};

int64_t row_grain(const Layout& L) {
  return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, L.C));
}

// Per row: its loss, its weight in the mean's denominator, and logsumexp (for backward).
void loss_forward_kernel(const Tensor& loss_rows, const Tensor& row_weight, const Tensor& lse,
                         const Tensor& x, const Tensor& target, const Tensor& weight, Layout L) {
  visit_floating(x.dtype(), L.op, [&]<class T>(TypeTag<T>) {
    using S = OpMath<T>;
    S* out = loss_rows.data<S>();
    S* rw = row_weight.data<S>();
    S* lp = lse.data<S>();
    const S ls = static_cast<S>(L.label_smoothing), inv_c = S(1) / static_cast<S>(L.C);
    parallel_for(0, L.N * L.D, row_grain(L), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const Row<T> row{L, x.data<T>(), weight.defined() ? weight.data<T>() : nullptr,
                         (r / L.D) * L.C * L.D + r % L.D};
        const S z = row.logsumexp();
        lp[r] = z;
        S loss = 0;
        if (L.prob_target) {
          for (int64_t c = 0; c < L.C; ++c)
            loss -= row.weight(c) * row.prob(target.data<T>(), c) * (row.at(c) - z);
          rw[r] = 1;
        } else {
          const int64_t t = row.target_class(target.data<int64_t>(), r);
          if (t < 0) {
            out[r] = rw[r] = 0;
            continue;
          }
          loss = -(1 - ls) * row.weight(t) * (row.at(t) - z);
          if (ls > 0) {
            S smooth = 0;
            for (int64_t c = 0; c < L.C; ++c) smooth += row.weight(c) * (row.at(c) - z);
            loss -= ls * inv_c * smooth;
          }
          rw[r] = row.weight(t);
        }
        out[r] = loss;
      }
    });
  });
}

// gx (and gt, the probability target's gradient, when defined) for upstream
// coefficients g_rows (one per row, or a single one for all rows).
void loss_backward_kernel(const Tensor& gx, const Tensor& gt, const Tensor& g_rows, const Tensor& x,
                          const Tensor& target, const Tensor& weight, const Tensor& lse, Layout L) {
  visit_floating(x.dtype(), L.op, [&]<class T>(TypeTag<T>) {
    using S = OpMath<T>;
    const S* g = g_rows.data<S>();
    const bool one_g = g_rows.numel() == 1;
    const S* lp = lse.data<S>();
    T* gxp = gx.data<T>();
    T* gtp = gt.defined() ? gt.data<T>() : nullptr;
    const S ls = static_cast<S>(L.label_smoothing), inv_c = S(1) / static_cast<S>(L.C);
    S wsum = static_cast<S>(L.C);
    if (weight.defined()) {
      wsum = 0;
      for (int64_t c = 0; c < L.C; ++c) wsum += static_cast<S>(weight.data<T>()[c]);
    }
    parallel_for(0, L.N * L.D, row_grain(L), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const Row<T> row{L, x.data<T>(), weight.defined() ? weight.data<T>() : nullptr,
                         (r / L.D) * L.C * L.D + r % L.D};
        const S coef = g[one_g ? 0 : r], z = lp[r];
        auto set = [&](int64_t c, S v) { gxp[row.base + c * L.D] = static_cast<T>(v); };
        if (L.prob_target) {
          const T* y = target.data<T>();
          S s = 0;
          for (int64_t c = 0; c < L.C; ++c) s += row.weight(c) * row.prob(y, c);
          for (int64_t c = 0; c < L.C; ++c) {
            const S logp = row.at(c) - z;
            set(c, coef * (std::exp(logp) * s - row.weight(c) * row.prob(y, c)));
            if (gtp)
              gtp[row.base + c * L.D] = static_cast<T>(-coef * (1 - ls) * row.weight(c) * logp);
          }
          continue;
        }
        const int64_t t = row.target_class(target.data<int64_t>(), r);
        if (t < 0 || L.log_probs) {
          for (int64_t c = 0; c < L.C; ++c) set(c, 0);
          if (t >= 0) set(t, -coef * row.weight(t));
          continue;
        }
        const S wt = row.weight(t);
        if constexpr (std::is_same_v<T, float>) {
          if (L.D == 1 && ls == 0) {  // the common case: coef * wt * (softmax - onehot)
            scaled_softmax_f32(x.data<T>() + row.base, gxp + row.base, L.C, z, coef * wt);
            gxp[row.base + t] -= coef * wt;
            continue;
          }
        }
        for (int64_t c = 0; c < L.C; ++c) {
          const S p = std::exp(row.at(c) - z);
          S v = (1 - ls) * wt * (p - (c == t ? S(1) : S(0)));
          if (ls > 0) v += ls * inv_c * (wsum * p - row.weight(c));
          set(c, coef * v);
        }
      }
    });
  });
}

}  // namespace

KILN_REGISTER_KERNEL(loss_forward, CPU, loss_forward_kernel);
KILN_REGISTER_KERNEL(loss_backward, CPU, loss_backward_kernel);

}  // namespace kiln::cpu
