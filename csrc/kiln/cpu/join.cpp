// Kernels for joining and rearranging ops: cat, flip, roll, tril/triu.
#include <algorithm>
#include <cstring>

#include "kiln/dispatch.h"
#include "kiln/dtype_dispatch.h"
#include "kiln/ops/join.h"
#include "kiln/parallel.h"
#include "kiln/tensor.h"

namespace kiln::cpu {
namespace {

// dst = src with dtype conversion; the copy loop takes any byte strides, negative ones included.
void copy_into(const Tensor& dst, const Tensor& src) {
  static const dispatch::Op<void(const Tensor&, const Tensor&)> copy("copy");
  copy(dst.device(), dst, src);
}

// A window of `t` along `dim` over the same memory (kernel-internal, no autograd).
Tensor narrow_raw(const Tensor& t, int64_t dim, int64_t start, int64_t length) {
  Shape sizes = t.sizes();
  sizes[dim] = length;
  return make_tensor(t.storage(), sizes, t.strides(),
                     t.storage_offset() + start * t.strides()[dim], t.dtype());
}

// `out` is freshly allocated (contiguous): each input fills a column block of the
// [outer, out.size(dim) * inner] matrix it is viewed as.
void cat_kernel(const Tensor& out, const TensorList& inputs, int64_t dim) {
  const int64_t item = static_cast<int64_t>(out.itemsize());
  int64_t outer = 1, inner = 1;
  for (int64_t k = 0; k < dim; ++k) outer *= out.sizes()[k];
  for (int64_t k = dim + 1; k < out.dim(); ++k) inner *= out.sizes()[k];
  const int64_t out_row = out.sizes()[dim] * inner * item;
  char* base = static_cast<char*>(out.data_ptr());
  int64_t offset = 0;
  for (const Tensor& t : inputs) {
    const int64_t len = t.sizes()[dim];
    if (t.numel() > 0 && t.is_contiguous() && t.dtype() == out.dtype()) {
      const int64_t row = len * inner * item;
      const char* src = static_cast<const char*>(t.data_ptr());
      char* dst = base + offset * inner * item;
      parallel_for(0, outer, std::max<int64_t>(1, kParallelGrain / (len * inner)),
                   [&](int64_t b, int64_t e) {
                     for (int64_t o = b; o < e; ++o)
                       std::memcpy(dst + o * out_row, src + o * row, row);
                   });
    } else if (t.numel() > 0) {
      copy_into(narrow_raw(out, dim, offset, len), t);
    }
    offset += len;
  }
}

// Each rolled dim splits the copy in two blocks: out[s:] = in[:n-s], out[:s] = in[n-s:].
void roll_blocks(const Tensor& out, const Tensor& in, const Shape& shifts, size_t d) {
  while (d < shifts.size() && shifts[d] == 0) ++d;
  if (d == shifts.size()) return copy_into(out, in);
  const int64_t n = in.sizes()[d], s = shifts[d];
  roll_blocks(narrow_raw(out, d, s, n - s), narrow_raw(in, d, 0, n - s), shifts, d + 1);
  roll_blocks(narrow_raw(out, d, 0, s), narrow_raw(in, d, n - s, s), shifts, d + 1);
}

// Element offset of row `r` when `t` is seen as rows of its last dim.
int64_t row_offset(const Tensor& t, int64_t r) {
  int64_t off = 0;
  for (int64_t d = t.dim() - 2; d >= 0; --d) {
    off += (r % t.sizes()[d]) * t.strides()[d];
    r /= t.sizes()[d];
  }
  return off;
}

// Row i of each matrix keeps columns [lo, hi) and zeroes the rest; `out` may be `in`.
template <bool kLower>
void triangle_kernel(const Tensor& out, const Tensor& in, int64_t diagonal) {
  const int64_t nd = in.dim(), m = in.sizes()[nd - 2], n = in.sizes()[nd - 1];
  if (in.numel() == 0) return;
  const int64_t rows = in.numel() / n;
  const bool in_place = out.data_ptr() == in.data_ptr() && out.strides() == in.strides();
  const int64_t os = out.strides()[nd - 1], is = in.strides()[nd - 1];
  visit_dtype(in.dtype(), [&]<class T>(TypeTag<T>) {
    parallel_for(0, rows, std::max<int64_t>(1, kParallelGrain / n), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const int64_t i = r % m;
        const int64_t lo = kLower ? 0 : std::clamp<int64_t>(i + diagonal, 0, n);
        const int64_t hi = kLower ? std::clamp<int64_t>(i + diagonal + 1, 0, n) : n;
        T* o = out.data<T>() + row_offset(out, r);
        const T* x = in.data<T>() + row_offset(in, r);
        for (int64_t j = 0; j < lo; ++j) o[j * os] = T{};
        if (!in_place)
          for (int64_t j = lo; j < hi; ++j) o[j * os] = x[j * is];
        for (int64_t j = hi; j < n; ++j) o[j * os] = T{};
      }
    });
  });
}

}  // namespace
}  // namespace kiln::cpu

namespace kiln::detail {

// Reads `in` through a view whose strides are negated along `dims`.
void flip_by_copy(const Tensor& out, const Tensor& in, const Shape& dims) {
  if (in.numel() == 0) return;
  Shape strides = in.strides();
  int64_t offset = in.storage_offset();
  for (int64_t d : dims) {
    offset += (in.sizes()[d] - 1) * strides[d];
    strides[d] = -strides[d];
  }
  cpu::copy_into(out, make_tensor(in.storage(), in.sizes(), strides, offset, in.dtype()));
}

void roll_by_copy(const Tensor& out, const Tensor& in, const Shape& shifts) {
  if (in.numel() == 0) return;
  cpu::roll_blocks(out, in, shifts, 0);
}

}  // namespace kiln::detail

namespace kiln::cpu {

KILN_REGISTER_KERNEL(cat, CPU, cat_kernel);
KILN_REGISTER_KERNEL(flip, CPU, detail::flip_by_copy);
KILN_REGISTER_KERNEL(roll, CPU, detail::roll_by_copy);
KILN_REGISTER_KERNEL(tril, CPU, triangle_kernel<true>);
KILN_REGISTER_KERNEL(triu, CPU, triangle_kernel<false>);

}  // namespace kiln::cpu
