#pragma once
// A generic CPU reduction: out has `in`'s rank with size 1 on reduced dims.
// Each output element folds its slice of `in` with `reduce(acc, value)`;
// large single-output reductions split the slice across threads and merge
// partial accumulators with `combine`.
#include <algorithm>
#include <vector>

#include "kiln/dtype_dispatch.h"
#include "kiln/parallel.h"
#include "kiln/tensor.h"

namespace kiln::cpu {

struct ReduceGeometry {
  // Kept (outer) dims and reduced (inner) dims of `in`, in element strides.
  Shape outer_sizes, outer_strides, inner_sizes, inner_strides;
  int64_t outer_numel = 1, inner_numel = 1;
};

inline ReduceGeometry reduce_geometry(const Tensor& out, const Tensor& in) {
  ReduceGeometry g;
  for (int64_t d = 0; d < in.dim(); ++d) {
    const int64_t s = in.sizes()[d];
    if (s == 1) continue;
    if (out.sizes()[d] == 1) {
      g.inner_sizes.push_back(s);
      g.inner_strides.push_back(in.strides()[d]);
      g.inner_numel *= s;
    } else {
      g.outer_sizes.push_back(s);
      g.outer_strides.push_back(in.strides()[d]);
      g.outer_numel *= s;
    }
  }
  if (in.numel() == 0) g.inner_numel = g.inner_sizes.empty() ? 1 : 0;
  // Merge inner dims that are linear in memory, so a contiguous slice is one run.
  Shape sizes, strides;
  for (size_t i = 0; i < g.inner_sizes.size(); ++i) {
    if (!sizes.empty() && strides.back() == g.inner_strides[i] * g.inner_sizes[i]) {
      sizes.back() *= g.inner_sizes[i];
      strides.back() = g.inner_strides[i];
    } else {
      sizes.push_back(g.inner_sizes[i]);
      strides.push_back(g.inner_strides[i]);
    }
  }
  g.inner_sizes = sizes;
  g.inner_strides = strides;
  return g;
}

// Folds elements [begin, end) of the inner (reduced) index space starting at `base`.
template <class T, class Acc, class Reduce>
inline Acc fold_inner(const T* base, const ReduceGeometry& g, int64_t begin, int64_t end, Acc acc,
                      const Reduce& reduce) {
  const int ni = static_cast<int>(g.inner_sizes.size());
  if (ni == 0) return begin < end ? reduce(acc, base[0]) : acc;
  const int64_t last_size = g.inner_sizes[ni - 1], last_stride = g.inner_strides[ni - 1];
  int64_t counter[16] = {};
  int64_t rest = begin / last_size, pos = begin % last_size;
  for (int d = ni - 2; d >= 0; --d) {
    counter[d] = rest % g.inner_sizes[d];
    rest /= g.inner_sizes[d];
  }
  int64_t i = begin;
  while (i < end) {
    const T* p = base;
    for (int d = 0; d < ni - 1; ++d) p += counter[d] * g.inner_strides[d];
    const int64_t n = std::min(last_size - pos, end - i);
    if (last_stride == 1) {
      p += pos;
      for (int64_t k = 0; k < n; ++k) acc = reduce(acc, p[k]);
    } else {
      p += pos * last_stride;
      for (int64_t k = 0; k < n; ++k) acc = reduce(acc, p[k * last_stride]);
    }
    i += n;
    pos = 0;
    for (int d = ni - 2; d >= 0; --d) {
      if (++counter[d] < g.inner_sizes[d]) break;
      counter[d] = 0;
    }
  }
  return acc;
}

// out[o] = project(fold of in's slice for o). `out` must be contiguous.
template <class T, class Out, class Acc, class Reduce, class Combine, class Project>
void reduce_loop(const Tensor& out, const Tensor& in, Acc init, const Reduce& reduce,
                 const Combine& combine, const Project& project) {
  const ReduceGeometry g = reduce_geometry(out, in);
  const T* in_data = in.data<T>();
  Out* out_data = out.data<Out>();
  const int no = static_cast<int>(g.outer_sizes.size());
  auto base_of = [&](int64_t o) {
    const T* p = in_data;
    for (int d = no - 1; d >= 0; --d) {
      p += (o % g.outer_sizes[d]) * g.outer_strides[d];
      o /= g.outer_sizes[d];
    }
    return p;
  };
  if (g.outer_numel == 1 && g.inner_numel > kParallelGrain && get_num_threads() > 1) {
    const int nt = get_num_threads();
    std::vector<Acc> partial(nt, init);
    const int64_t chunk = (g.inner_numel + nt - 1) / nt;
    parallel_for(0, nt, 1, [&](int64_t tb, int64_t te) {
      for (int64_t t = tb; t < te; ++t) {
        const int64_t b = t * chunk, e = std::min(g.inner_numel, b + chunk);
        if (b < e) partial[t] = fold_inner(in_data, g, b, e, init, reduce);
      }
    });
    Acc acc = init;
    for (const Acc& p : partial) acc = combine(acc, p);
    out_data[0] = project(acc, g.inner_numel);
    return;
  }
  const int64_t grain = std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, g.inner_numel));
  parallel_for(0, g.outer_numel, grain, [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o)
      out_data[o] = project(fold_inner(base_of(o), g, 0, g.inner_numel, init, reduce), g.inner_numel);
  });
}

}  // namespace kiln::cpu
