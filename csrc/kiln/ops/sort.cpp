#include "kiln/ops/sort.h"

#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/dispatch.h"
#include "kiln/error.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/view.h"

namespace kiln {

using autograd::BackwardArgs;

namespace {

// Kernels work along the last dim of the views they get (the front end
// transposes `dim` there); every other dim is a batch of independent rows.
using SortKernel = void(const Tensor& values, const Tensor& indices, const Tensor& input,
                        int64_t k, bool descending);
using IndexKernel = void(const Tensor& out, const Tensor& src, const Tensor& index);

Tensor last(const Tensor& t, int64_t dim) { return t.dim() == 0 ? t : transpose(t, dim, -1); }

// sort/topk backward needs a gather/scatter pair along a dim that differentiate into
// each other (for double backward). Private and minimal: indices come from sort/topk,
// so they are distinct along the dim; the public gather/scatter ops may replace these.
Tensor scatter_along(const Tensor& src, const Tensor& index, int64_t dim, int64_t size);

// out[..., j, ...] = src[..., index[..., j, ...], ...] along `dim`; out has index's shape.
Tensor gather_along(const Tensor& src, const Tensor& index, int64_t dim) {
  Tensor out = empty(index.sizes(), src.dtype(), src.device());
  static const dispatch::Op<IndexKernel> k("sort_gather");
  k(src.device(), last(out, dim), last(src, dim), last(index, dim));
  if (autograd::needs_grad({src})) {
    const int64_t size = src.dim() == 0 ? 1 : src.size(dim);
    autograd::record("GatherBackward0", {src}, {out}, {index}, [dim, size](const BackwardArgs& a) {
      return TensorList{scatter_along(a.grad(), a.saved[0], dim, size)};
    });
  }
  return out;
}

// The adjoint of gather_along for indices that are distinct along `dim`:
// zeros of size `size` along dim, with src written at `index`.
Tensor scatter_along(const Tensor& src, const Tensor& index, int64_t dim, int64_t size) {
  Shape shape = index.sizes();
  if (!shape.empty()) shape[dim] = size;
  Tensor out = zeros(shape, src.dtype(), src.device());
  static const dispatch::Op<IndexKernel> k("sort_scatter");
  k(src.device(), last(out, dim), last(src, dim), last(index, dim));
  if (autograd::needs_grad({src})) {
    autograd::record("ScatterBackward0", {src}, {out}, {index}, [dim](const BackwardArgs& a) {
      return TensorList{gather_along(a.grad(), a.saved[0], dim)};
    });
  }
  return out;
}

// Runs a sort-like kernel along `dim` with `k` outputs per row; records the
// backward that routes each value's gradient back to its input position.
std::tuple<Tensor, Tensor> select_sorted(const char* backward_name, const Tensor& input,
                                         int64_t k, int64_t dim, bool descending) {
  Shape shape = input.sizes();
  if (!shape.empty()) shape[dim] = k;
  Tensor values = empty(shape, input.dtype(), input.device());
  Tensor indices = empty(shape, ScalarType::Int64, input.device());
  static const dispatch::Op<SortKernel> kernel("sort");
  kernel(input.device(), last(values, dim), last(indices, dim), last(input, dim), k, descending);
  if (autograd::needs_grad({input})) {
    const int64_t size = input.dim() == 0 ? 1 : input.size(dim);
    autograd::record(backward_name, {input}, {values}, {indices},
                     [dim, size](const BackwardArgs& a) {
                       return TensorList{scatter_along(a.grad(0), a.saved[0], dim, size)};
                     });
  }
  return {values, indices};
}

}  // namespace

std::tuple<Tensor, Tensor> sort(const Tensor& input, int64_t dim, bool descending,
                                bool /*stable*/) {
  dim = wrap_dim(dim, input.dim(), "sort");
  const int64_t n = input.dim() == 0 ? 1 : input.size(dim);
  return select_sorted("SortBackward0", input, n, dim, descending);
}

Tensor argsort(const Tensor& input, int64_t dim, bool descending, bool stable) {
  autograd::NoGradGuard no_grad;
  dim = wrap_dim(dim, input.dim(), "argsort");
  return std::get<1>(sort(input, dim, descending, stable));
}

std::tuple<Tensor, Tensor> topk(const Tensor& input, int64_t k, int64_t dim, bool largest,
                                bool /*sorted*/) {
  dim = wrap_dim(dim, input.dim(), "topk");
  const int64_t n = input.dim() == 0 ? 1 : input.size(dim);
  KILN_CHECK(k >= 0 && k <= n, IndexError, "[topk] selected index k=", k,
             " out of range for dimension ", dim, " of size ", n, " (shape ", input.sizes(), ")");
  return select_sorted("TopkBackward0", input, k, dim, largest);
}

std::tuple<Tensor, Tensor, Tensor> unique(const Tensor& input, bool /*sorted*/,
                                          bool return_inverse, bool return_counts) {
  using UniqueKernel = std::tuple<Tensor, Tensor, Tensor>(const Tensor&, bool, bool);
  static const dispatch::Op<UniqueKernel> k("unique");
  Tensor flat = contiguous(reshape(detach(input), {input.numel()}));
  auto [values, inverse, counts] = k(input.device(), flat, return_inverse, return_counts);
  if (inverse.defined()) inverse = view(inverse, input.sizes());
  return {values, inverse, counts};
}

}  // namespace kiln
