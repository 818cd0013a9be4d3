#include "kiln/ops/sort.h"

#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/dispatch.h"
#include "kiln/error.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/gather.h"
#include "kiln/ops/view.h"

namespace kiln {

using autograd::BackwardArgs;

namespace {

// Kernels work along the last dim of the views they get (the front end
// transposes `dim` there); every other dim is a batch of independent rows.
using SortKernel = void(const Tensor& values, const Tensor& indices, const Tensor& input,
                        int64_t k, bool descending);

Tensor last(const Tensor& t, int64_t dim) { return t.dim() == 0 ? t : transpose(t, dim, -1); }

// The gradient of values taken from `input` at `indices` along `dim`: scattered back
// into zeros of the input's shape. scatter_add's own backward is a gather, so double
// backward works.
Tensor scatter_back(const Tensor& grad, const Tensor& indices, int64_t dim,
                    const Shape& input_shape) {
  if (input_shape.empty()) return grad;  // sorting a scalar is the identity
  return scatter_add(zeros(input_shape, grad.dtype(), grad.device()), dim, indices, grad);
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
    const Shape input_shape = input.sizes();
    autograd::record(backward_name, {input}, {values}, {indices},
                     [dim, input_shape](const BackwardArgs& a) {
                       return TensorList{scatter_back(a.grad(0), a.saved[0], dim, input_shape)};
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
