// Advanced indexing kernels: gather (index), scatter (index_put) and mask positions.
#include <algorithm>

#include "kiln/dispatch.h"
#include "kiln/dtype_dispatch.h"
#include "kiln/error.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/index.h"
#include "kiln/parallel.h"

namespace kiln::cpu {
namespace {

// Element offsets of every position of a (sizes, strides) walk, row-major.
std::vector<int64_t> strided_offsets(const Shape& sizes, const Shape& strides) {
  std::vector<int64_t> out(shape_numel(sizes));
  const int64_t nd = static_cast<int64_t>(sizes.size());
  Shape counter(nd, 0);
  int64_t off = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = off;
    for (int64_t d = nd - 1; d >= 0; --d) {
      off += strides[d];
      if (++counter[d] < sizes[d]) break;
      off -= counter[d] * strides[d];
      counter[d] = 0;
    }
  }
  return out;
}

// Note [Advanced index layout]: the output (or values) is [pre, B, post] where
// B is the index shape and pre/post are the dims of self that are not indexed,
// split where B goes (see ops/index.cpp). Element (p, b, q) is at self offset
// pre[p] + gathered[b] + post[q].
struct Layout {
  std::vector<int64_t> pre, gathered, post;
  size_t post_dims = 0;
  bool post_contiguous = false;  // post[q] == q: inner loops are plain copies
};

Layout make_layout(const char* op, const Tensor& self, const TensorList& indices,
                   const Shape& dims) {
  const detail::UnindexedDims u = detail::unindexed_dims(self, dims);
  Layout l;
  l.pre = strided_offsets(u.pre_sizes, u.pre_strides);
  l.post = strided_offsets(u.post_sizes, u.post_strides);
  l.post_dims = u.post_sizes.size();
  l.post_contiguous = true;
  for (size_t q = 0; q < l.post.size(); ++q)
    l.post_contiguous &= l.post[q] == static_cast<int64_t>(q);
  const int64_t n = indices[0].numel();
  l.gathered.assign(n, 0);
  for (size_t k = 0; k < dims.size(); ++k) {
    const int64_t* idx = indices[k].data<int64_t>();
    const int64_t size = self.sizes()[dims[k]], stride = self.strides()[dims[k]];
    for (int64_t b = 0; b < n; ++b) {
      int64_t i = idx[b];
      KILN_CHECK(i >= -size && i < size, IndexError, "[", op, "] index ", i,
                 " is out of bounds for dimension ", dims[k], " with size ", size);
      l.gathered[b] += (i < 0 ? i + size : i) * stride;
    }
  }
  return l;
}

// Calls f(row, p, b) for rows [begin, end) of the (pre, B) grid, in order.
template <class F>
inline void for_rows(int64_t begin, int64_t end, int64_t nb, const F& f) {
  int64_t p = begin / nb, b = begin % nb;
  for (int64_t row = begin; row < end; ++row) {
    f(row, p, b);
    if (++b == nb) {
      b = 0;
      ++p;
    }
  }
}

// Moves whole elements by size only: indexing never converts dtypes.
template <size_t N>
struct Bytes {
  char b[N];
};

template <class F>
void visit_itemsize(size_t itemsize, F&& f) {
  switch (itemsize) {
    case 1: return f(TypeTag<Bytes<1>>{});
    case 2: return f(TypeTag<Bytes<2>>{});
    case 4: return f(TypeTag<Bytes<4>>{});
    case 8: return f(TypeTag<Bytes<8>>{});
  }
  throw Error("[index] unsupported element size");
}

void index_kernel(const Tensor& out, const Tensor& self, const TensorList& indices,
                  const Shape& dims) {
  if (out.numel() == 0) return;
  const Layout l = make_layout("index", self, indices, dims);
  const int64_t nb = static_cast<int64_t>(l.gathered.size());
  const int64_t nq = static_cast<int64_t>(l.post.size());
  visit_itemsize(self.itemsize(), [&]<class T>(TypeTag<T>) {
    const T* src = self.data<T>();
    T* dst = out.data<T>();
    const int64_t grain = std::max<int64_t>(1, kParallelGrain / nq);
    const int64_t rows = static_cast<int64_t>(l.pre.size()) * nb;
    parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
      for_rows(begin, end, nb, [&](int64_t row, int64_t p, int64_t b) {
        const T* s = src + l.pre[p] + l.gathered[b];
        T* d = dst + row * nq;
        if (l.post_contiguous) {
          for (int64_t q = 0; q < nq; ++q) d[q] = s[q];
        } else {
          for (int64_t q = 0; q < nq; ++q) d[q] = s[l.post[q]];
        }
      });
    });
  });
}

// `values` has the index result's shape with any strides (broadcast values have zeros).
void index_put_kernel(const Tensor& self, const Tensor& values, const TensorList& indices,
                      const Shape& dims, bool accumulate) {
  if (values.numel() == 0) return;
  const Layout l = make_layout("index_put_", self, indices, dims);
  const int64_t nb = static_cast<int64_t>(l.gathered.size());
  const int64_t nq = static_cast<int64_t>(l.post.size());
  const auto split = values.sizes().end() - static_cast<int64_t>(l.post_dims);
  const std::vector<int64_t> vrow =
      strided_offsets(Shape(values.sizes().begin(), split),
                      Shape(values.strides().begin(), values.strides().end() - l.post_dims));
  const std::vector<int64_t> vq = strided_offsets(
      Shape(split, values.sizes().end()), Shape(values.strides().end() - l.post_dims,
                                                values.strides().end()));
  const int64_t grain = std::max<int64_t>(1, kParallelGrain / (nb * nq));
  // Rows with different `pre` never touch the same element, so they run in parallel;
  // within one, duplicate indices are applied in order (the last write wins).
  visit_dtype(self.dtype(), [&]<class T>(TypeTag<T>) {
    T* dst = self.data<T>();
    const T* src = values.data<T>();
    parallel_for(0, static_cast<int64_t>(l.pre.size()), grain, [&](int64_t begin, int64_t end) {
      for_rows(begin * nb, end * nb, nb, [&](int64_t row, int64_t p, int64_t b) {
        T* d = dst + l.pre[p] + l.gathered[b];
        const T* s = src + vrow[row];
        for (int64_t q = 0; q < nq; ++q) {
          T& o = d[l.post[q]];
          const T v = s[vq[q]];
          if (!accumulate) o = v;
          else if constexpr (std::is_same_v<T, bool>) o = o || v;
          else o = static_cast<T>(static_cast<OpMath<T>>(o) + static_cast<OpMath<T>>(v));
        }
      });
    });
  });
}

Tensor mask_indices_kernel(const Tensor& mask) {
  const bool* m = mask.data<bool>();
  const int64_t n = mask.numel(), nd = mask.dim();
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) count += m[i];
  Tensor out = empty({nd, count}, ScalarType::Int64, mask.device());
  int64_t* o = out.data<int64_t>();
  Shape counter(nd, 0);
  int64_t k = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (m[i]) {
      for (int64_t d = 0; d < nd; ++d) o[d * count + k] = counter[d];
      ++k;
    }
    for (int64_t d = nd - 1; d >= 0; --d) {
      if (++counter[d] < mask.sizes()[d]) break;
      counter[d] = 0;
    }
  }
  return out;
}

}  // namespace

KILN_REGISTER_KERNEL(index, CPU, index_kernel);
KILN_REGISTER_KERNEL(index_put, CPU, index_put_kernel);
KILN_REGISTER_KERNEL(mask_indices, CPU, mask_indices_kernel);

}  // namespace kiln::cpu

namespace kiln::detail {

UnindexedDims unindexed_dims(const Tensor& self, const Shape& dims) {
  bool adjacent = true;
  for (size_t k = 1; k < dims.size(); ++k) adjacent &= dims[k] == dims[k - 1] + 1;
  UnindexedDims u;
  size_t next = 0;
  for (int64_t d = 0; d < self.dim(); ++d) {
    if (next < dims.size() && dims[next] == d) {
      ++next;
      continue;
    }
    const bool before = adjacent && d < dims[0];
    (before ? u.pre_sizes : u.post_sizes).push_back(self.sizes()[d]);
    (before ? u.pre_strides : u.post_strides).push_back(self.strides()[d]);
  }
  return u;
}

}  // namespace kiln::detail
