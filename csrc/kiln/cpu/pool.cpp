// Max and average pooling over (planes, H, W) windows described by a PoolGeometry.
#include "kiln/ops/pool.h"

#include <algorithm>

#include "kiln/dispatch.h"
#include "kiln/dtype_dispatch.h"
#include "kiln/parallel.h"

#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace kiln::cpu {
namespace {

template <class F>
void visit_float(ScalarType dt, const char* op, const F& f) {
  visit_dtype(dt, [&]<class T>(TypeTag<T>) {
    if constexpr (std::is_floating_point_v<OpMath<T>> && !std::is_same_v<T, bool>)
      f(TypeTag<T>{});
    else
      throw TypeError(std::string("[") + op + "] unsupported dtype " + dtype_name(dt));
  });
}

int64_t plane_grain(int64_t work_per_plane) {
  return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(work_per_plane, 1));
}

// The taps i in [lo, hi) of each window along one axis that land inside the
// input (start + i * step in [0, size)), so the pooling loops need no bounds checks.
struct Taps {
  std::vector<int64_t> lo, hi;
};
Taps inside_taps(const std::vector<int64_t>& start, const std::vector<int64_t>& len,
                 int64_t step, int64_t size) {
  Taps t;
  for (size_t o = 0; o < start.size(); ++o) {
    int64_t lo = 0, hi = len[o];
    while (lo < hi && start[o] + lo * step < 0) ++lo;
    while (hi > lo && start[o] + (hi - 1) * step >= size) --hi;
    t.lo.push_back(lo);
    t.hi.push_back(hi);
  }
  return t;
}

// True when every window is 2x2 at stride 2 without dilation, inside the input
// (MaxPool2d(2) on even sizes): the case max_pool_2x2_row takes.
bool plain_2x2(const PoolGeometry& g, const Taps& th, const Taps& tw) {
  if (g.step_h != 1 || g.step_w != 1) return false;
  const auto plain = [](const std::vector<int64_t>& start, const std::vector<int64_t>& len,
                        const Taps& t) {
    for (size_t o = 0; o < start.size(); ++o)
      if (start[o] != int64_t(2 * o) || len[o] != 2 || t.lo[o] != 0 || t.hi[o] != 2) return false;
    return true;
  };
  return plain(g.h_start, g.h_len, th) && plain(g.w_start, g.w_len, tw);
}

// One output row of plain 2x2 windows over input rows r0 and r1 = r0 + W (r0 at
// flat index `at0`), four outputs at a time with SSE selects (which tap wins is
// unpredictable, so branches would mispredict). Returns the outputs written.
int64_t max_pool_2x2_row(const float* r0, int64_t at0, int64_t W, int64_t Wo, float* o,
                         int64_t* ix) {
  int64_t ow = 0;
#if defined(__SSE2__)
  const float* r1 = r0 + W;
  for (; ow + 4 <= Wo; ow += 4) {
    const __m128 x0 = _mm_loadu_ps(r0 + 2 * ow), x1 = _mm_loadu_ps(r0 + 2 * ow + 4);
    const __m128 y0 = _mm_loadu_ps(r1 + 2 * ow), y1 = _mm_loadu_ps(r1 + 2 * ow + 4);
    // Taps in PyTorch's scan order: (0, 0), (0, 1), (1, 0), (1, 1).
    const __m128 taps[4] = {_mm_shuffle_ps(x0, x1, _MM_SHUFFLE(2, 0, 2, 0)),
                            _mm_shuffle_ps(x0, x1, _MM_SHUFFLE(3, 1, 3, 1)),
                            _mm_shuffle_ps(y0, y1, _MM_SHUFFLE(2, 0, 2, 0)),
                            _mm_shuffle_ps(y0, y1, _MM_SHUFFLE(3, 1, 3, 1))};
    const int32_t offsets[4] = {0, 1, int32_t(W), int32_t(W + 1)};
    __m128 best = taps[0];
    __m128i off = _mm_setzero_si128();
    for (int t = 1; t < 4; ++t) {
      const __m128 take = _mm_or_ps(_mm_cmpgt_ps(taps[t], best), _mm_cmpunord_ps(taps[t], taps[t]));
      best = _mm_or_ps(_mm_and_ps(take, taps[t]), _mm_andnot_ps(take, best));
      const __m128i ti = _mm_castps_si128(take);
      off = _mm_or_si128(_mm_and_si128(ti, _mm_set1_epi32(offsets[t])), _mm_andnot_si128(ti, off));
    }
    _mm_storeu_ps(o + ow, best);
    int32_t lane[4];
    _mm_storeu_si128(reinterpret_cast<__m128i*>(lane), off);
    for (int l = 0; l < 4; ++l) ix[ow + l] = at0 + 2 * (ow + l) + lane[l];
  }
#else
  (void)r0, (void)at0, (void)W, (void)Wo, (void)o, (void)ix;
#endif
  return ow;
}

// out, indices: (P, Ho, Wo); input: contiguous (P, H, W). NaN wins, as in PyTorch;
// a window with no tap inside the input gives 0 at index -1.
void max_pool_kernel(const Tensor& out, const Tensor& indices, const Tensor& input,
                     const PoolGeometry& g) {
  visit_float(input.dtype(), "max_pool", [&]<class T>(TypeTag<T>) {
    using M = OpMath<T>;
    const int64_t Ho = out.size(1), Wo = out.size(2), H = g.height, W = g.width;
    const Taps th = inside_taps(g.h_start, g.h_len, g.step_h, H);
    const Taps tw = inside_taps(g.w_start, g.w_len, g.step_w, W);
    const T* in = input.data<T>();
    T* o = out.data<T>();
    int64_t* ix = indices.data<int64_t>();
    const bool fast = std::is_same_v<T, float> && plain_2x2(g, th, tw);
    parallel_for(0, out.size(0), plane_grain(H * W + Ho * Wo), [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) {
        const T* plane = in + p * H * W;
        for (int64_t oh = 0; oh < Ho; ++oh) {
          const int64_t k0 = (p * Ho + oh) * Wo;
          int64_t ow = 0;
          if constexpr (std::is_same_v<T, float>)
            if (fast) ow = max_pool_2x2_row(plane + 2 * oh * W, 2 * oh * W, W, Wo, o + k0, ix + k0);
          for (; ow < Wo; ++ow) {
            const int64_t i0 = th.lo[oh], i1 = th.hi[oh], j0 = tw.lo[ow], j1 = tw.hi[ow];
            if (i0 == i1 || j0 == j1) {
              o[k0 + ow] = T(0);
              ix[k0 + ow] = -1;
              continue;
            }
            const int64_t col = g.w_start[ow];
            int64_t at = (g.h_start[oh] + i0 * g.step_h) * W + col + j0 * g.step_w;
            M best = static_cast<M>(plane[at]);
            // Selects rather than branches: which tap wins is unpredictable.
            for (int64_t i = i0; i < i1; ++i) {
              const int64_t row = (g.h_start[oh] + i * g.step_h) * W + col;
              for (int64_t j = j0; j < j1; ++j) {
                const int64_t k = row + j * g.step_w;
                const M v = static_cast<M>(plane[k]);
                const bool take = (v > best) | (v != v);
                best = take ? v : best;
                at = take ? k : at;
              }
            }
            o[k0 + ow] = static_cast<T>(best);
            ix[k0 + ow] = at;
          }
        }
      }
    });
  });
}

// grad_in: contiguous (P, H, W), overwritten; grad_out, indices: contiguous (P, Ho, Wo).
// A plane's shares are summed in order, so disjoint windows need no other path.
void max_pool_backward_kernel(const Tensor& grad_in, const Tensor& grad_out,
                              const Tensor& indices, bool /*disjoint*/) {
  visit_float(grad_in.dtype(), "max_pool", [&]<class T>(TypeTag<T>) {
    using M = OpMath<T>;
    const int64_t HW = grad_in.size(1) * grad_in.size(2), L = grad_out.size(1) * grad_out.size(2);
    T* gi = grad_in.data<T>();
    const T* go = grad_out.data<T>();
    const int64_t* ix = indices.data<int64_t>();
    parallel_for(0, grad_in.size(0), plane_grain(HW + L), [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) {
        T* plane = gi + p * HW;
        std::fill(plane, plane + HW, T(0));
        for (int64_t k = p * L; k < (p + 1) * L; ++k)
          plane[ix[k]] = static_cast<T>(static_cast<M>(plane[ix[k]]) + static_cast<M>(go[k]));
      }
    });
  });
}

double divisor(const PoolGeometry& g, int64_t oh, int64_t ow) {
  return g.divisor != 0 ? g.divisor : g.h_div[oh] * g.w_div[ow];
}

// out: (P, Ho, Wo); input: contiguous (P, H, W); windows lie inside the input.
void avg_pool_kernel(const Tensor& out, const Tensor& input, const PoolGeometry& g) {
  visit_float(input.dtype(), "avg_pool", [&]<class T>(TypeTag<T>) {
    using M = OpMath<T>;
    const int64_t Ho = out.size(1), Wo = out.size(2), W = g.width, HW = g.height * g.width;
    const T* in = input.data<T>();
    T* o = out.data<T>();
    parallel_for(0, out.size(0), plane_grain(HW + Ho * Wo), [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) {
        const T* plane = in + p * HW;
        for (int64_t oh = 0; oh < Ho; ++oh) {
          for (int64_t ow = 0; ow < Wo; ++ow) {
            M acc = 0;
            for (int64_t h = g.h_start[oh]; h < g.h_start[oh] + g.h_len[oh]; ++h)
              for (int64_t w = g.w_start[ow]; w < g.w_start[ow] + g.w_len[ow]; ++w)
                acc += static_cast<M>(plane[h * W + w]);
            o[(p * Ho + oh) * Wo + ow] = static_cast<T>(acc / M(divisor(g, oh, ow)));
          }
        }
      }
    });
  });
}

// The adjoint: grad_in (P, H, W), overwritten, gets each output's share back.
void avg_pool_backward_kernel(const Tensor& grad_in, const Tensor& grad_out,
                              const PoolGeometry& g) {
  visit_float(grad_in.dtype(), "avg_pool", [&]<class T>(TypeTag<T>) {
    using M = OpMath<T>;
    const int64_t Ho = grad_out.size(1), Wo = grad_out.size(2), W = g.width;
    const int64_t HW = g.height * g.width;
    T* gi = grad_in.data<T>();
    const T* go = grad_out.data<T>();
    parallel_for(0, grad_in.size(0), plane_grain(HW + Ho * Wo), [&](int64_t b, int64_t e) {
      std::vector<M> acc(HW);
      for (int64_t p = b; p < e; ++p) {
        std::fill(acc.begin(), acc.end(), M(0));
        for (int64_t oh = 0; oh < Ho; ++oh) {
          for (int64_t ow = 0; ow < Wo; ++ow) {
            const M share = static_cast<M>(go[(p * Ho + oh) * Wo + ow]) / M(divisor(g, oh, ow));
            for (int64_t h = g.h_start[oh]; h < g.h_start[oh] + g.h_len[oh]; ++h)
              for (int64_t w = g.w_start[ow]; w < g.w_start[ow] + g.w_len[ow]; ++w)
                acc[h * W + w] += share;
          }
        }
        for (int64_t i = 0; i < HW; ++i) gi[p * HW + i] = static_cast<T>(acc[i]);
      }
    });
  });
}

}  // namespace

KILN_REGISTER_KERNEL(max_pool, CPU, max_pool_kernel);
KILN_REGISTER_KERNEL(max_pool_backward, CPU, max_pool_backward_kernel);
KILN_REGISTER_KERNEL(avg_pool, CPU, avg_pool_kernel);
KILN_REGISTER_KERNEL(avg_pool_backward, CPU, avg_pool_backward_kernel);

}  // namespace kiln::cpu
