// max/min reductions with indices, and the one-hot mask their backward scatters through.
#include <cmath>
#include <limits>

#include "kiln/cpu/reduce_loops.h"
#include "kiln/cpu/vec_math.h"
#include "kiln/dispatch.h"

namespace kiln::cpu {
namespace {

template <class C>
struct Best {
  C v;
  int64_t i;
};

template <class C>
inline bool is_nan(C v) {
  if constexpr (std::is_floating_point_v<C>) return std::isnan(v);
  else return false;
}

// values/indices (either may be undefined) of the max (is_max) or min over the
// reduced dims. NaN wins; among equal values the first index wins, as in PyTorch.
void minmax_kernel(const Tensor& values, const Tensor& indices, const Tensor& in, bool is_max) {
  visit_dtype(in.dtype(), [&]<class T>(TypeTag<T>) {
    using C = OpMath<T>;
    using Acc = Best<C>;
    T* vo = values.defined() ? values.data<T>() : nullptr;
    int64_t* io = indices.defined() ? indices.data<int64_t>() : nullptr;
    const Tensor& out = values.defined() ? values : indices;
    auto better = [is_max](C a, C b) { return is_max ? a > b : a < b; };
    C worst;
    if constexpr (std::is_floating_point_v<C>)
      worst = is_max ? -std::numeric_limits<C>::infinity() : std::numeric_limits<C>::infinity();
    else
      worst = is_max ? std::numeric_limits<C>::lowest() : std::numeric_limits<C>::max();
    const ContiguousBlock blk = contiguous_block(out, in);
    if constexpr (std::is_same_v<T, float>) {
      if (!io && blk.valid && blk.inner == 1) {  // values of contiguous rows: the SSE row kernel
        const int64_t row = blk.n;
        const float* x = in.data<float>();
        parallel_for(0, in.numel() / row, std::max<int64_t>(1, kParallelGrain / row),
                     [&](int64_t b, int64_t e) {
          for (int64_t r = b; r < e; ++r)
            vo[r] = is_max ? row_extreme<true>(x + r * row, row) : row_extreme<false>(x + r * row, row);
        });
        return;
      }
    }
    if (!io) {
      // Values only (amax/amin): a plain select; NaN is sticky because
      // nothing compares greater than it and v != v only for NaN.
      auto pick = [=](C a, C v) { return (better(v, a) || v != v) ? v : a; };
      reduce_loop<T>(
          out, in, worst, [=](C a, T x, int64_t) { return pick(a, static_cast<C>(x)); }, pick,
          [=](int64_t o, C a, int64_t) { vo[o] = static_cast<T>(a); });
      return;
    }
    // The init's index 0 is right whenever it survives: then every element equals `worst`.
    reduce_loop<T>(
        out, in, Acc{worst, 0},
        [=](Acc a, T x, int64_t i) {
          const C v = static_cast<C>(x);
          if (is_nan(a.v)) return a;
          return (is_nan(v) || better(v, a.v)) ? Acc{v, i} : a;
        },
        [=](const Acc& a, const Acc& b) {
          if (is_nan(a.v) != is_nan(b.v)) return is_nan(a.v) ? a : b;
          if (is_nan(a.v) || a.v == b.v) return a.i <= b.i ? a : b;
          return better(a.v, b.v) ? a : b;
        },
        [=](int64_t o, const Acc& a, int64_t) {
          if (vo) vo[o] = static_cast<T>(a.v);
          if (io) io[o] = a.i;
        });
  });
}

// out (bool, `in`'s full shape) = position along `dim` equals index (keepdim-shaped, int64).
void index_mask_kernel(const Tensor& out, const Tensor& index, int64_t dim) {
  const Shape& s = out.sizes();
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= s[d];
  for (int64_t d = dim + 1; d < out.dim(); ++d) inner *= s[d];
  const int64_t n = s[dim];
  const int64_t* idx = index.data<int64_t>();
  bool* o = out.data<bool>();
  parallel_for(0, outer, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, n * inner)),
               [&](int64_t b, int64_t e) {
                 for (int64_t r = b; r < e; ++r)
                   for (int64_t k = 0; k < n; ++k)
                     for (int64_t j = 0; j < inner; ++j)
                       o[(r * n + k) * inner + j] = idx[r * inner + j] == k;
               });
}

}  // namespace

KILN_REGISTER_KERNEL(minmax, CPU, minmax_kernel);
KILN_REGISTER_KERNEL(_reduce_index_mask, CPU, index_mask_kernel);

}  // namespace kiln::cpu
