#include "kiln/ops/minmax.h"

#include "kiln/autograd/node.h"
#include "kiln/dispatch.h"
#include "kiln/error.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/unary.h"
#include "kiln/ops/reduce.h"
#include "kiln/ops/view.h"

namespace kiln {

using autograd::BackwardArgs;

namespace {

using MinMaxKernel = void(const Tensor&, const Tensor&, const Tensor&, bool);

// Runs the minmax kernel over `dims`; values and/or indices, kept dims of size 1.
std::pair<Tensor, Tensor> reduce_best(const char* op, const Tensor& t, const Shape& dims,
                                      bool is_max, bool want_values, bool want_indices) {
  reduction::check_nonempty(op, t, dims);
  const Shape keep = reduction::keepdim_shape(op, t, dims);
  Tensor values = want_values ? empty(keep, t.dtype(), t.device()) : Tensor();
  Tensor indices = want_indices ? empty(keep, ScalarType::Int64, t.device()) : Tensor();
  static const dispatch::Op<MinMaxKernel> kernel("minmax");
  kernel(t.device(), values, indices, t, is_max);
  return {values, indices};
}

Tensor squeeze_if(const Tensor& r, bool keepdim, const Tensor& t, const Shape& dims) {
  return keepdim ? r : view(r, reduction::squeeze_reduced(r.sizes(), t, dims));
}

// Bool mask over `shape` (contiguous) that is true where the position along `dim` equals
// `index` (int64, `shape` with size 1 at dim). Not differentiable.
Tensor index_mask(const Shape& shape, int64_t dim, const Tensor& index) {
  Tensor out = empty(shape, ScalarType::Bool, index.device());
  static const dispatch::Op<void(const Tensor&, const Tensor&, int64_t)> kernel("_reduce_index_mask");
  kernel(index.device(), out, contiguous(index), dim);
  return out;
}

// amax/amin and the full max/min: the gradient is shared evenly among the tied extremes.
Tensor extreme(const char* op, const char* node, const Tensor& t, const Shape& dims, bool keepdim,
               bool is_max) {
  Tensor out = reduce_best(op, t, dims, is_max, true, false).first;
  out = squeeze_if(out, keepdim, t, dims);
  if (autograd::needs_grad({t}))
    autograd::record(node, {t}, {out}, {t, out}, [=](const BackwardArgs& a) {
      const Tensor& x = a.saved[0];
      Tensor mask = eq(x, reduction::unsqueeze_reduced(a.saved[1], x.sizes(), dims, keepdim));
      Tensor count = sum(mask, dims, true);
      Tensor g = reduction::unsqueeze_reduced(a.grad(), x.sizes(), dims, keepdim) / count;
      return TensorList{where(mask, g, zeros({}, g.dtype(), g.device()))};
    });
  return out;
}

// max/min along one dim: the gradient goes to the selected index.
std::pair<Tensor, Tensor> best_along(const char* op, const char* node, const Tensor& t,
                                     int64_t dim, bool keepdim, bool is_max) {
  const int64_t d = wrap_dim(dim, t.dim(), op);
  auto [values, indices] = reduce_best(op, t, {d}, is_max, true, true);
  values = squeeze_if(values, keepdim, t, {d});
  indices = squeeze_if(indices, keepdim, t, {d});
  if (autograd::needs_grad({t})) {
    const Shape shape = t.sizes();
    autograd::record(node, {t}, {values}, {indices}, [=](const BackwardArgs& a) {
      const Tensor ik = reduction::unsqueeze_reduced(a.saved[0], shape, {d}, keepdim);
      Tensor g = reduction::unsqueeze_reduced(a.grad(), shape, {d}, keepdim);
      Tensor mask = shape.empty() ? ones({}, ScalarType::Bool, g.device()) : index_mask(shape, d, ik);
      return TensorList{where(mask, g, zeros({}, g.dtype(), g.device()))};
    });
  }
  return {values, indices};
}

Tensor arg_best(const char* op, const Tensor& t, std::optional<int64_t> dim, bool keepdim,
                bool is_max) {
  const Shape dims = dim ? Shape{wrap_dim(*dim, t.dim(), op)} : Shape{};
  Tensor idx = reduce_best(op, t, dims, is_max, false, true).second;
  return squeeze_if(idx, keepdim, t, dims);
}

}  // namespace

Tensor max(const Tensor& t) { return extreme("max", "MaxBackward1", t, {}, false, true); }
Tensor min(const Tensor& t) { return extreme("min", "MinBackward1", t, {}, false, false); }

std::pair<Tensor, Tensor> max(const Tensor& t, int64_t dim, bool keepdim) {
  return best_along("max", "MaxBackward0", t, dim, keepdim, true);
}
std::pair<Tensor, Tensor> min(const Tensor& t, int64_t dim, bool keepdim) {
  return best_along("min", "MinBackward0", t, dim, keepdim, false);
}

Tensor amax(const Tensor& t, const Shape& dims, bool keepdim) {
  return extreme("amax", "AmaxBackward0", t, dims, keepdim, true);
}
Tensor amin(const Tensor& t, const Shape& dims, bool keepdim) {
  return extreme("amin", "AminBackward0", t, dims, keepdim, false);
}

std::pair<Tensor, Tensor> aminmax(const Tensor& t, std::optional<int64_t> dim, bool keepdim) {
  const Shape dims = dim ? Shape{*dim} : Shape{};
  return {extreme("aminmax", "AminBackward0", t, dims, keepdim, false),
          extreme("aminmax", "AmaxBackward0", t, dims, keepdim, true)};
}

Tensor argmax(const Tensor& t, std::optional<int64_t> dim, bool keepdim) {
  return arg_best("argmax", t, dim, keepdim, true);
}
Tensor argmin(const Tensor& t, std::optional<int64_t> dim, bool keepdim) {
  return arg_best("argmin", t, dim, keepdim, false);
}

}  // namespace kiln
