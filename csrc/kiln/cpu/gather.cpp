// Kernels for index-driven ops: gather, scatter (replace/add/multiply), nonzero.
#include <algorithm>
#include <cstdlib>
#include <limits>
#include <vector>

#include "kiln/dispatch.h"
#include "kiln/dtype_dispatch.h"
#include "kiln/error.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/gather.h"
#include "kiln/parallel.h"
#include "kiln/tensor_iter.h"

namespace kiln::cpu {
namespace {

// 0-d tensors index like 1-d tensors of one element.
Shape sizes_1d(const Tensor& t) { return t.dim() == 0 ? Shape{1} : t.sizes(); }
Shape strides_1d(const Tensor& t) { return t.dim() == 0 ? Shape{1} : t.strides(); }

// Note [Index loops along dim]: walks every position of the int64 `index`. The
// positions along `dim` are an inner serial loop, so threads split only the other
// dims: two threads never touch the same element of `a`, which keeps scatter's
// accumulations race-free and its "last write wins" order deterministic. For each
// position p (with coordinate k along dim) it calls
//   f(&a[p with k replaced by index[p]], &b[p])
// where `a` is addressed through the index (gather's input, scatter's self) and `b`
// directly (gather's output, scatter's src). Both have dtype T and any strides; they
// only need to be at least as large as index in every dim (`a` except along dim).
// When writes go to `b` (gather), positions never collide, so with kSplitDim a long
// `dim` with few other positions (an embedding lookup) is split across threads instead.
template <class T, bool kSplitDim = false, class F>
void index_dim_loop(const Tensor& a, const Tensor& b, const Tensor& index, int64_t dim,
                    const char* op, const F& f) {
  Shape sizes = sizes_1d(index);
  const int64_t count = sizes[dim];
  sizes[dim] = 1;
  auto restride = [&](const Tensor& t) {
    return make_tensor(t.storage(), sizes, strides_1d(t), t.storage_offset(), t.dtype());
  };
  const int64_t a_size = sizes_1d(a)[dim];
  // Element strides along dim; TensorIter gives the other dims' strides in bytes.
  const int64_t a_step = strides_1d(a)[dim], b_step = strides_1d(b)[dim];
  const int64_t i_step = strides_1d(index)[dim];
  auto check = [a_size, dim, op](int64_t v) {
    KILN_CHECK(v >= 0 && v < a_size, IndexError, "[", op, "] index ", v,
               " is out of bounds for dimension ", dim, " with size ", a_size);
  };
  constexpr int64_t kT = sizeof(T), kI = sizeof(int64_t);
  TensorIter iter({restride(b), restride(a), restride(index)});
  // The loop over positions k in [kb, ke) along dim, for one TensorIter run.
  auto body = [=, &f](int64_t kb, int64_t ke) {
    return [=, &f](char** p, const int64_t* s, int64_t n) {
      T* a0 = reinterpret_cast<T*>(p[1]);
      T* b0 = reinterpret_cast<T*>(p[0]);
      const int64_t* i0 = reinterpret_cast<const int64_t*>(p[2]);
      const int64_t sa = s[1] / kT, sb = s[0] / kT, si = s[2] / kI;
      if (std::abs(b_step) <= std::abs(sb)) {  // dim is b's inner dim: walk it innermost
        for (int64_t j = 0; j < n; ++j) {
          T* a = a0 + j * sa;
          T* b = b0 + j * sb;
          const int64_t* ix = i0 + j * si;
          for (int64_t k = kb; k < ke; ++k) {
            const int64_t v = ix[k * i_step];
            check(v);
            f(a + v * a_step, b + k * b_step);
          }
        }
      } else if (si == 0) {  // one index for the whole run (index_select, index_add)
        for (int64_t k = kb; k < ke; ++k) {
          const int64_t v = i0[k * i_step];
          check(v);
          T* a = a0 + v * a_step;
          T* b = b0 + k * b_step;
          if (sa == 1 && sb == 1) {  // contiguous rows: a loop the compiler vectorizes
            for (int64_t j = 0; j < n; ++j) f(a + j, b + j);
          } else {
            for (int64_t j = 0; j < n; ++j) f(a + j * sa, b + j * sb);
          }
        }
      } else {
        for (int64_t k = kb; k < ke; ++k)
          for (int64_t j = 0; j < n; ++j) {
            const int64_t v = i0[j * si + k * i_step];
            check(v);
            f(a0 + j * sa + v * a_step, b0 + j * sb + k * b_step);
          }
      }
    };
  };
  if (iter.numel() == 0) return;
  if (kSplitDim && count > iter.numel()) {
    parallel_for(0, count, std::max<int64_t>(1, kParallelGrain / iter.numel()),
                 [&](int64_t kb, int64_t ke) {
                   iter.serial_for_each(body(kb, ke), 0, iter.numel());
                 });
  } else {
    iter.for_each(body(0, count),
                  std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(count, 1)));
  }
}

void gather_kernel(const Tensor& out, const Tensor& input, const Tensor& index, int64_t dim,
                   const char* op) {
  visit_dtype(input.dtype(), [&]<class T>(TypeTag<T>) {
    index_dim_loop<T, true>(input, out, index, dim, op, [](const T* src, T* dst) { *dst = *src; });
  });
}

void scatter_kernel(const Tensor& self, const Tensor& index, const Tensor& src, int64_t dim,
                    ScatterReduce reduce, const char* op) {
  visit_dtype(self.dtype(), [&]<class T>(TypeTag<T>) {
    using C = OpMath<T>;
    switch (reduce) {
      case ScatterReduce::None:
        return index_dim_loop<T>(self, src, index, dim, op, [](T* dst, const T* v) { *dst = *v; });
      case ScatterReduce::Add:
        return index_dim_loop<T>(self, src, index, dim, op, [](T* dst, const T* v) {
          *dst = static_cast<T>(static_cast<C>(*dst) + static_cast<C>(*v));
        });
      case ScatterReduce::Multiply:
        return index_dim_loop<T>(self, src, index, dim, op, [](T* dst, const T* v) {
          *dst = static_cast<T>(static_cast<C>(*dst) * static_cast<C>(*v));
        });
    }
  });
}

// Smallest and largest value of an int64 tensor with at least one element.
void index_range_kernel(const Tensor& t, int64_t* lo, int64_t* hi) {
  *lo = std::numeric_limits<int64_t>::max();
  *hi = std::numeric_limits<int64_t>::min();
  TensorIter iter({t});
  iter.serial_for_each(
      [&](char** p, const int64_t* s, int64_t n) {
        for (int64_t i = 0; i < n; ++i) {
          const int64_t v = *reinterpret_cast<const int64_t*>(p[0] + i * s[0]);
          *lo = std::min(*lo, v);
          *hi = std::max(*hi, v);
        }
      },
      0, iter.numel());
}

// `in` is contiguous. Chunks count their nonzeros in parallel, then write their rows
// at the offsets a prefix sum of the counts gives, so the order is row-major.
Tensor nonzero_kernel(const Tensor& in) {
  const int64_t numel = in.numel(), nd = in.dim();
  const int64_t chunks = std::clamp<int64_t>((numel + kParallelGrain - 1) / kParallelGrain, 1,
                                             get_num_threads());
  const int64_t chunk = (numel + chunks - 1) / chunks;
  std::vector<int64_t> offsets(chunks + 1, 0);
  Tensor out;
  visit_dtype(in.dtype(), [&]<class T>(TypeTag<T>) {
    const T* x = in.data<T>();
    auto nz = [](T v) { return static_cast<OpMath<T>>(v) != OpMath<T>(0); };
    parallel_for(0, chunks, 1, [&](int64_t b, int64_t e) {
      for (int64_t c = b; c < e; ++c) {
        int64_t n = 0;
        for (int64_t i = c * chunk, end = std::min(numel, i + chunk); i < end; ++i) n += nz(x[i]);
        offsets[c + 1] = n;
      }
    });
    for (int64_t c = 0; c < chunks; ++c) offsets[c + 1] += offsets[c];
    out = empty({offsets[chunks], nd}, ScalarType::Int64, in.device());
    int64_t* o = out.data<int64_t>();
    parallel_for(0, chunks, 1, [&](int64_t b, int64_t e) {
      Shape coord(nd);
      for (int64_t c = b; c < e; ++c) {
        const int64_t begin = c * chunk, end = std::min(numel, begin + chunk);
        if (begin >= end) continue;
        int64_t rest = begin;
        for (int64_t d = nd - 1; d >= 0; --d) {
          coord[d] = rest % in.sizes()[d];
          rest /= in.sizes()[d];
        }
        int64_t* row = o + offsets[c] * nd;
        for (int64_t i = begin; i < end; ++i) {
          if (nz(x[i])) {
            std::copy(coord.begin(), coord.end(), row);
            row += nd;
          }
          for (int64_t d = nd - 1; d >= 0 && ++coord[d] == in.sizes()[d]; --d) coord[d] = 0;
        }
      }
    });
  });
  return out;
}

}  // namespace

KILN_REGISTER_KERNEL(gather, CPU, gather_kernel);
KILN_REGISTER_KERNEL(scatter, CPU, scatter_kernel);
KILN_REGISTER_KERNEL(index_range, CPU, index_range_kernel);
KILN_REGISTER_KERNEL(nonzero, CPU, nonzero_kernel);

}  // namespace kiln::cpu
