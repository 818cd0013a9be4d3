#pragma once
// A generic CPU reduction. `out` is contiguous with `in`'s rank and size 1 on
// the reduced dims. A reduction is four functors:
//   init                         the empty accumulator
//   reduce(acc, value, index)    folds one element (index: its position in the
//                                row-major order of the reduced dims)
//   combine(acc, acc)            merges independent accumulators (associative)
//   store(out_index, acc, count) writes the result for one output element
// Layouts (Note [Reduction layouts]):
//  - inner: each output's slice is folded on its own; unit-stride runs use eight
//    independent accumulators so the loop is not bound by add latency.
//  - outer: when `in`'s fastest dim is kept (e.g. summing a contiguous matrix
//    over dim 0), whole rows are accumulated into a block of accumulators, so
//    memory streams instead of being strided once per output element.
//  - one output from many inputs: the slice is split across threads and the
//    partial accumulators merged with `combine`.
#include <algorithm>
#include <cstdlib>
#include <vector>

#include "kiln/dtype_dispatch.h"
#include "kiln/error.h"
#include "kiln/parallel.h"
#include "kiln/tensor.h"

namespace kiln::cpu {

struct ReduceGeometry {
  // Kept (outer) dims with their strides in `in` and `out`; reduced (inner) dims.
  Shape outer_sizes, outer_strides, outer_out_strides;
  Shape inner_sizes, inner_strides;
  int64_t outer_numel = 1, inner_numel = 1;
};

inline ReduceGeometry reduce_geometry(const Tensor& out, const Tensor& in) {
  ReduceGeometry g;
  for (int64_t d = 0; d < in.dim(); ++d) {
    const int64_t s = in.sizes()[d];
    if (s == 1) continue;
    if (out.sizes()[d] == 1) {
      g.inner_numel *= s;
      // Merge with the previous reduced dim when linear in memory, so a contiguous slice is one run.
      if (!g.inner_sizes.empty() && g.inner_strides.back() == in.strides()[d] * s) {
        g.inner_sizes.back() *= s;
        g.inner_strides.back() = in.strides()[d];
        continue;
      }
      g.inner_sizes.push_back(s);
      g.inner_strides.push_back(in.strides()[d]);
    } else {
      g.outer_sizes.push_back(s);
      g.outer_strides.push_back(in.strides()[d]);
      g.outer_out_strides.push_back(out.strides()[d]);
      g.outer_numel *= s;
    }
  }
  KILN_CHECK(g.inner_sizes.size() <= 16, ValueError, "[reduce] at most 16 non-adjacent reduced "
             "dims are supported, got input shape ", in.sizes(), " reduced to ", out.sizes());
  return g;
}

// Calls run(offset, stride, n, first_index) for each innermost run covering
// inner positions [begin, end) (offset in elements from the slice's base).
template <class Run>
inline void for_each_inner_run(const ReduceGeometry& g, int64_t begin, int64_t end, const Run& run) {
  const int ni = static_cast<int>(g.inner_sizes.size());
  if (ni == 0) {
    if (begin < end) run(int64_t(0), int64_t(0), int64_t(1), int64_t(0));
    return;
  }
  const int64_t last_size = g.inner_sizes[ni - 1], last_stride = g.inner_strides[ni - 1];
  int64_t counter[16] = {};
  int64_t rest = begin / last_size, pos = begin % last_size;
  for (int d = ni - 2; d >= 0; --d) {
    counter[d] = rest % g.inner_sizes[d];
    rest /= g.inner_sizes[d];
  }
  int64_t i = begin;
  while (i < end) {
    int64_t off = pos * last_stride;
    for (int d = 0; d < ni - 1; ++d) off += counter[d] * g.inner_strides[d];
    const int64_t n = std::min(last_size - pos, end - i);
    run(off, last_stride, n, i);
    i += n;
    pos = 0;
    for (int d = ni - 2; d >= 0; --d) {
      if (++counter[d] < g.inner_sizes[d]) break;
      counter[d] = 0;
    }
  }
}

// Folds n elements p[k * stride] whose reduced-order indices start at idx0.
// Unit-stride runs go through kLanes independent accumulators (vectorizable for
// simple ones, and never bound by the latency of one dependent chain).
constexpr int kReduceLanes = 8;
template <class T, class Acc, class Reduce, class Combine>
inline Acc fold_run(const T* p, int64_t stride, int64_t n, int64_t idx0, Acc acc, const Acc& init,
                    const Reduce& reduce, const Combine& combine) {
  if (stride == 1 && n >= 2 * kReduceLanes) {
    Acc lanes[kReduceLanes];
    lanes[0] = acc;
    for (int l = 1; l < kReduceLanes; ++l) lanes[l] = init;
    int64_t k = 0;
    for (; k + kReduceLanes <= n; k += kReduceLanes)
      for (int l = 0; l < kReduceLanes; ++l) lanes[l] = reduce(lanes[l], p[k + l], idx0 + k + l);
    for (; k < n; ++k) lanes[0] = reduce(lanes[0], p[k], idx0 + k);
    for (int w = kReduceLanes / 2; w > 0; w /= 2)
      for (int l = 0; l < w; ++l) lanes[l] = combine(lanes[l], lanes[l + w]);
    return lanes[0];
  }
  for (int64_t k = 0; k < n; ++k) acc = reduce(acc, p[k * stride], idx0 + k);
  return acc;
}

template <class T, class Acc, class Reduce, class Combine>
inline Acc fold_inner(const T* base, const ReduceGeometry& g, int64_t begin, int64_t end,
                      const Acc& init, const Reduce& reduce, const Combine& combine) {
  Acc acc = init;
  for_each_inner_run(g, begin, end, [&](int64_t off, int64_t stride, int64_t n, int64_t idx0) {
    acc = fold_run(base + off, stride, n, idx0, acc, init, reduce, combine);
  });
  return acc;
}

// Offsets in `in` and `out` of outer position o, skipping outer dim `skip` (-1: none).
inline void outer_offsets(const ReduceGeometry& g, int64_t o, int skip, int64_t& in_off,
                          int64_t& out_off) {
  in_off = out_off = 0;
  for (int d = static_cast<int>(g.outer_sizes.size()) - 1; d >= 0; --d) {
    if (d == skip) continue;
    const int64_t i = o % g.outer_sizes[d];
    o /= g.outer_sizes[d];
    in_off += i * g.outer_strides[d];
    out_off += i * g.outer_out_strides[d];
  }
}

// The outer layout: accumulates blocks of the vector dim `vd` row by row.
template <class T, class Acc, class Reduce, class Store>
void reduce_outer(const ReduceGeometry& g, int vd, const T* in_data, const Acc& init,
                  const Reduce& reduce, const Store& store) {
  constexpr int64_t kBlock = 256;
  const int64_t len = g.outer_sizes[vd], vstride = g.outer_strides[vd];
  const int64_t ostride = g.outer_out_strides[vd];
  const int64_t rows = g.outer_numel / len, nblocks = (len + kBlock - 1) / kBlock;
  const int64_t grain = std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, g.inner_numel * kBlock));
  parallel_for(0, rows * nblocks, grain, [&](int64_t tb, int64_t te) {
    std::vector<Acc> acc(kBlock, init);
    for (int64_t task = tb; task < te; ++task) {
      const int64_t row = task / nblocks, b0 = (task % nblocks) * kBlock;
      const int64_t bn = std::min(kBlock, len - b0);
      int64_t in_off, out_off;
      outer_offsets(g, row, vd, in_off, out_off);
      const T* base = in_data + in_off + b0 * vstride;
      std::fill(acc.begin(), acc.begin() + bn, init);
      for_each_inner_run(g, 0, g.inner_numel, [&](int64_t off, int64_t stride, int64_t n, int64_t idx0) {
        for (int64_t k = 0; k < n; ++k) {
          const T* p = base + off + k * stride;
          if (vstride == 1) {
            for (int64_t j = 0; j < bn; ++j) acc[j] = reduce(acc[j], p[j], idx0 + k);
          } else {
            for (int64_t j = 0; j < bn; ++j) acc[j] = reduce(acc[j], p[j * vstride], idx0 + k);
          }
        }
      });
      for (int64_t j = 0; j < bn; ++j) store(out_off + (b0 + j) * ostride, acc[j], g.inner_numel);
    }
  });
}

// The kept dim to vectorize over, or -1 when folding each output's slice is better:
// the one with the smallest stride, if that is smaller than every reduced stride.
inline int outer_vector_dim(const ReduceGeometry& g) {
  if (g.inner_sizes.empty() || g.outer_sizes.empty()) return -1;
  int best = -1;
  for (int d = 0; d < static_cast<int>(g.outer_sizes.size()); ++d)
    if (best < 0 || std::abs(g.outer_strides[d]) < std::abs(g.outer_strides[best])) best = d;
  for (int64_t s : g.inner_strides)
    if (std::abs(s) <= std::abs(g.outer_strides[best])) return -1;
  return best;
}

// A contiguous `in` whose reduced dims are one run of adjacent dims reduces as
// [outer, n, inner] -> [outer, inner]: rows when inner == 1, columns otherwise.
// Kernels may take fast paths for these; `valid` is false for other layouts.
struct ContiguousBlock {
  bool valid = false;
  int64_t outer = 1, n = 1, inner = 1;
};

inline ContiguousBlock contiguous_block(const Tensor& out, const Tensor& in) {
  ContiguousBlock b;
  if (!in.is_contiguous() || in.numel() == 0) return b;
  int state = 0;  // 0: before the reduced run, 1: in it, 2: after it
  for (int64_t d = 0; d < in.dim(); ++d) {
    const int64_t s = in.sizes()[d];
    if (s == 1) continue;
    const bool reduced = out.sizes()[d] == 1;
    if (reduced && state == 2) return b;
    if (reduced) state = 1;
    else if (state == 1) state = 2;
    (reduced ? b.n : state == 0 ? b.outer : b.inner) *= s;
  }
  b.valid = true;
  return b;
}

template <class T, class Acc, class Reduce, class Combine, class Store>
void reduce_loop(const Tensor& out, const Tensor& in, const Acc& init, const Reduce& reduce,
                 const Combine& combine, const Store& store) {
  const ReduceGeometry g = reduce_geometry(out, in);
  if (g.outer_numel == 0) return;
  const T* in_data = in.data<T>();
  if (g.inner_numel == 0) {
    for (int64_t o = 0; o < g.outer_numel; ++o) store(o, init, int64_t(0));
    return;
  }
  if (g.outer_numel == 1 && g.inner_numel > kParallelGrain && get_num_threads() > 1) {
    const int nt = get_num_threads();
    std::vector<Acc> partial(nt, init);
    const int64_t chunk = (g.inner_numel + nt - 1) / nt;
    parallel_for(0, nt, 1, [&](int64_t tb, int64_t te) {
      for (int64_t t = tb; t < te; ++t) {
        const int64_t b = t * chunk, e = std::min(g.inner_numel, b + chunk);
        if (b < e) partial[t] = fold_inner(in_data, g, b, e, init, reduce, combine);
      }
    });
    Acc acc = init;
    for (const Acc& p : partial) acc = combine(acc, p);
    store(int64_t(0), acc, g.inner_numel);
    return;
  }
  const int vd = outer_vector_dim(g);
  if (vd >= 0) return reduce_outer(g, vd, in_data, init, reduce, store);
  const int64_t grain = std::max<int64_t>(1, kParallelGrain / g.inner_numel);
  parallel_for(0, g.outer_numel, grain, [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      int64_t in_off, out_off;
      outer_offsets(g, o, -1, in_off, out_off);
      store(out_off, fold_inner(in_data + in_off, g, 0, g.inner_numel, init, reduce, combine),
            g.inner_numel);
    }
  });
}

}  // namespace kiln::cpu
