// Max and average pooling over (planes, H, W) windows described by a PoolGeometry.
#include "kiln/ops/pool.h"

#include <algorithm>
#include <cmath>

#include "kiln/dispatch.h"
#include "kiln/dtype_dispatch.h"
#include "kiln/parallel.h"

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

// out, indices: (P, Ho, Wo); input: contiguous (P, H, W). NaN wins, as in PyTorch.
void max_pool_kernel(const Tensor& out, const Tensor& indices, const Tensor& input,
                     const PoolGeometry& g) {
  visit_float(input.dtype(), "max_pool", [&]<class T>(TypeTag<T>) {
    using M = OpMath<T>;
    const int64_t Ho = out.size(1), Wo = out.size(2), H = g.height, W = g.width;
    const T* in = input.data<T>();
    T* o = out.data<T>();
    int64_t* ix = indices.data<int64_t>();
    parallel_for(0, out.size(0), plane_grain(H * W + Ho * Wo), [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) {
        const T* plane = in + p * H * W;
        for (int64_t oh = 0; oh < Ho; ++oh) {
          for (int64_t ow = 0; ow < Wo; ++ow) {
            M best = 0;
            int64_t at = -1;
            for (int64_t i = 0; i < g.h_len[oh]; ++i) {
              const int64_t h = g.h_start[oh] + i * g.step_h;
              if (h < 0 || h >= H) continue;
              for (int64_t j = 0; j < g.w_len[ow]; ++j) {
                const int64_t w = g.w_start[ow] + j * g.step_w;
                if (w < 0 || w >= W) continue;
                const M v = static_cast<M>(plane[h * W + w]);
                if (at < 0 || v > best || std::isnan(v)) {
                  best = v;
                  at = h * W + w;
                }
              }
            }
            const int64_t k = (p * Ho + oh) * Wo + ow;
            o[k] = static_cast<T>(best);
            ix[k] = at;
          }
        }
      }
    });
  });
}

// grad_in: contiguous (P, H, W), overwritten; grad_out, indices: contiguous (P, Ho, Wo).
void max_pool_backward_kernel(const Tensor& grad_in, const Tensor& grad_out,
                              const Tensor& indices) {
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
