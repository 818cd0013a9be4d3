#include "kiln/ops/reduce.h"

#include "kiln/autograd/node.h"
#include "kiln/dispatch.h"
#include "kiln/error.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/promotion.h"
#include "kiln/ops/view.h"

namespace kiln {

using autograd::BackwardArgs;
using ReduceKernel = void(const Tensor&, const Tensor&);

namespace reduction {

Shape keepdim_shape(const char* op, const Tensor& t, const Shape& dims) {
  Shape out = t.sizes();
  if (dims.empty()) {
    for (auto& s : out) s = 1;
    return out;
  }
  std::vector<bool> seen(std::max<int64_t>(t.dim(), 1), false);
  for (int64_t d : dims) {
    const int64_t w = wrap_dim(d, t.dim(), op);
    KILN_CHECK(!seen[w], ValueError, "[", op, "] dim ", w, " appears multiple times in the list "
               "of dims ", dims);
    seen[w] = true;
    if (t.dim() > 0) out[w] = 1;
  }
  return out;
}

Shape squeeze_reduced(const Shape& keep, const Tensor& t, const Shape& dims) {
  if (dims.empty()) return {};
  std::vector<bool> reduced(t.dim(), false);
  for (int64_t d : dims)
    if (t.dim() > 0) reduced[wrap_dim(d, t.dim(), "reduce")] = true;
  Shape out;
  for (int64_t i = 0; i < t.dim(); ++i)
    if (!reduced[i]) out.push_back(keep[i]);
  return out;
}

Tensor unsqueeze_reduced(const Tensor& grad, const Shape& input_shape, const Shape& dims,
                         bool keepdim) {
  if (keepdim) return grad;
  const int64_t nd = static_cast<int64_t>(input_shape.size());
  Shape shape = input_shape;
  if (dims.empty()) {
    for (auto& s : shape) s = 1;
  } else {
    for (int64_t d : dims)
      if (nd > 0) shape[wrap_dim(d, nd, "reduce")] = 1;
  }
  return reshape(grad, shape);
}

}  // namespace reduction

Tensor sum(const Tensor& t, const Shape& dims, bool keepdim, std::optional<ScalarType> dtype) {
  const ScalarType out_dtype =
      dtype ? *dtype : (is_floating(t.dtype()) ? t.dtype() : ScalarType::Int64);
  const Shape keep = reduction::keepdim_shape("sum", t, dims);
  Tensor in = t.dtype() == out_dtype ? t : to_dtype(detach(t), out_dtype);
  Tensor out = empty(keep, out_dtype, t.device());
  static const dispatch::Op<ReduceKernel> kernel("sum");
  kernel(t.device(), out, in);
  if (!keepdim) out = view(out, reduction::squeeze_reduced(keep, t, dims));
  if (autograd::needs_grad({t})) {
    const Shape in_shape = t.sizes();
    autograd::record("SumBackward1", {t}, {out}, {}, [=](const BackwardArgs& a) {
      return TensorList{expand(reduction::unsqueeze_reduced(a.grad(), in_shape, dims, keepdim),
                               in_shape)};
    });
  }
  return out;
}

Tensor all(const Tensor& t, const Shape& dims, bool keepdim) {
  const Shape keep = reduction::keepdim_shape("all", t, dims);
  Tensor in = t.dtype() == ScalarType::Bool ? t : to_dtype(detach(t), ScalarType::Bool);
  Tensor out = empty(keep, ScalarType::Bool, t.device());
  static const dispatch::Op<ReduceKernel> kernel("all");
  kernel(t.device(), out, in);
  if (!keepdim) out = view(out, reduction::squeeze_reduced(keep, t, dims));
  return out;
}

Tensor sum_to(const Tensor& t, const Shape& shape) {
  if (t.sizes() == shape) return t;
  KILN_CHECK(is_expandable_to(shape, t.sizes()), ValueError, "[sum_to] shape ", shape,
             " is not expandable to ", t.sizes());
  const int64_t lead = t.dim() - static_cast<int64_t>(shape.size());
  Shape dims;
  for (int64_t i = 0; i < t.dim(); ++i)
    if (i < lead || (shape[i - lead] == 1 && t.sizes()[i] != 1)) dims.push_back(i);
  Tensor r = dims.empty() ? t : sum(t, dims, /*keepdim=*/true);
  return lead > 0 || r.sizes() != shape ? reshape(r, shape) : r;
}

}  // namespace kiln
