#include "kiln/ops/reduce.h"

#include "kiln/autocast.h"
#include "kiln/autograd/node.h"
#include "kiln/dispatch.h"
#include "kiln/error.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/elementwise.h"
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

int64_t reduced_count(const Tensor& t, const Shape& dims) {
  if (dims.empty()) return t.numel();
  int64_t n = 1;
  for (int64_t d : dims)
    if (t.dim() > 0) n *= t.sizes()[wrap_dim(d, t.dim(), "reduce")];
  return n;
}

void check_nonempty(const char* op, const Tensor& t, const Shape& dims) {
  if (t.numel() != 0) return;
  KILN_CHECK(!dims.empty(), IndexError, "[", op, "] expected reduction dim to be specified for "
             "input.numel() == 0 (input shape ", t.sizes(), ")");
  for (int64_t d : dims) {
    const int64_t w = wrap_dim(d, t.dim(), op);
    KILN_CHECK(t.dim() == 0 || t.sizes()[w] != 0, IndexError, "[", op,
               "] expected reduction dim ", w, " to have non-zero size (input shape ", t.sizes(),
               ")");
  }
}

}  // namespace reduction

namespace {

// Runs kernel `k` with `in` converted to `dtype`; returns the un-kept result.
Tensor run_reduction(const dispatch::Op<ReduceKernel>& k, const Tensor& t, const Shape& dims,
                     bool keepdim, ScalarType dtype) {
  const Shape keep = reduction::keepdim_shape(k.name().c_str(), t, dims);
  Tensor in = t.dtype() == dtype ? t : to_dtype(detach(t), dtype);
  Tensor out = empty(keep, dtype, t.device());
  k(t.device(), out, in);
  return keepdim ? out : view(out, reduction::squeeze_reduced(keep, t, dims));
}

ScalarType sum_dtype(const Tensor& t, std::optional<ScalarType> dtype) {
  return dtype ? *dtype : (is_floating(t.dtype()) ? t.dtype() : ScalarType::Int64);
}

// The gradient of a reduced output broadcast back over the input.
Tensor expand_grad(const Tensor& g, const Shape& in_shape, const Shape& dims, bool keepdim) {
  return expand(reduction::unsqueeze_reduced(g, in_shape, dims, keepdim), in_shape);
}

}  // namespace

Tensor sum(const Tensor& t, const Shape& dims, bool keepdim, std::optional<ScalarType> dtype) {
  KILN_AUTOCAST(kFloat32OptDtypeCuda, sum, t, dims, keepdim, dtype);
  static const dispatch::Op<ReduceKernel> kernel("sum");
  Tensor out = run_reduction(kernel, t, dims, keepdim, sum_dtype(t, dtype));
  if (autograd::needs_grad({t})) {
    const Shape in_shape = t.sizes();
    autograd::record("SumBackward1", {t}, {out}, {}, [=](const BackwardArgs& a) {
      return TensorList{expand_grad(a.grad(), in_shape, dims, keepdim)};
    });
  }
  return out;
}

Tensor mean(const Tensor& t, const Shape& dims, bool keepdim, std::optional<ScalarType> dtype) {
  static const dispatch::Op<ReduceKernel> kernel("mean");
  const ScalarType dt = dtype ? *dtype : t.dtype();
  KILN_CHECK(is_floating(dt), Error, "[mean] could not infer output dtype. Input dtype must be "
             "either a floating point or complex dtype. Got: ", dt);
  Tensor out = run_reduction(kernel, t, dims, keepdim, dt);
  if (autograd::needs_grad({t})) {
    const Shape in_shape = t.sizes();
    const int64_t n = reduction::reduced_count(t, dims);
    autograd::record("MeanBackward1", {t}, {out}, {}, [=](const BackwardArgs& a) {
      return TensorList{expand_grad(a.grad(), in_shape, dims, keepdim) / Scalar(n)};
    });
  }
  return out;
}

Tensor nansum(const Tensor& t, const Shape& dims, bool keepdim, std::optional<ScalarType> dtype) {
  static const dispatch::Op<ReduceKernel> kernel("nansum");
  if (!is_floating(t.dtype())) return sum(t, dims, keepdim, dtype);
  Tensor out = run_reduction(kernel, t, dims, keepdim, dtype ? *dtype : t.dtype());
  if (autograd::needs_grad({t})) {
    const Shape in_shape = t.sizes();
    autograd::record("NansumBackward0", {t}, {out}, {t}, [=](const BackwardArgs& a) {
      const Tensor& x = a.saved[0];
      Tensor g = expand_grad(a.grad(), in_shape, dims, keepdim);
      return TensorList{where(ne(x, x), zeros({}, g.dtype(), g.device()), g)};
    });
  }
  return out;
}

Tensor nanmean(const Tensor& t, const Shape& dims, bool keepdim, std::optional<ScalarType> dtype) {
  const ScalarType dt = dtype ? *dtype : t.dtype();
  KILN_CHECK(is_floating(dt), Error, "[nanmean] expected a floating point input or dtype, got ",
             dt);
  Tensor x = to_dtype(t, dt);
  Tensor count = sum(eq(detach(x), detach(x)), dims, keepdim);
  return nansum(x, dims, keepdim) / count;
}

Tensor prod(const Tensor& t, const Shape& dims, bool keepdim, std::optional<ScalarType> dtype) {
  KILN_AUTOCAST(kFloat32CpuOptDtypeCuda, prod, t, dims, keepdim, dtype);
  static const dispatch::Op<ReduceKernel> kernel("prod");
  Tensor out = run_reduction(kernel, t, dims, keepdim, sum_dtype(t, dtype));
  if (autograd::needs_grad({t})) {
    const Shape in_shape = t.sizes();
    autograd::record("ProdBackward1", {t}, {out}, {t}, [=](const BackwardArgs& a) {
      // d prod / d x_i is the product of the others. Without zeros that is prod / x_i;
      // with one zero only the zero's slot gets (the product of the nonzeros); the
      // others get 0 written as zero_value * prod / x_i so double backward stays exact.
      // With two or more zeros every first derivative is 0.
      const Tensor& x = a.saved[0];
      const Device dev = x.device();
      Tensor one = scalar_tensor(1, x.dtype(), dev), zero = scalar_tensor(0, x.dtype(), dev);
      Tensor z = eq(x, zero);
      Tensor nz = sum(z, dims, true);
      Tensor x_safe = where(z, one, x);
      Tensor p = prod(x_safe, dims, true);
      Tensor zero_value = sum(where(z, x, zero), dims, true);
      Tensor others = where(eq(nz, scalar_tensor(0, ScalarType::Int64, dev)), p / x_safe,
                            where(eq(nz, scalar_tensor(1, ScalarType::Int64, dev)),
                                  where(z, p, zero_value * p / x_safe), zero));
      return TensorList{reduction::unsqueeze_reduced(a.grad(), in_shape, dims, keepdim) * others};
    });
  }
  return out;
}

namespace {
// all/any: bool results, except uint8 inputs give uint8 (PyTorch's quirk).
Tensor bool_reduction(const dispatch::Op<ReduceKernel>& kernel, const Tensor& t, const Shape& dims,
                      bool keepdim) {
  Tensor out = run_reduction(kernel, t, dims, keepdim, ScalarType::Bool);
  return t.dtype() == ScalarType::UInt8 ? to_dtype(out, ScalarType::UInt8) : out;
}
}  // namespace

Tensor all(const Tensor& t, const Shape& dims, bool keepdim) {
  static const dispatch::Op<ReduceKernel> kernel("all");
  return bool_reduction(kernel, t, dims, keepdim);
}

Tensor any(const Tensor& t, const Shape& dims, bool keepdim) {
  static const dispatch::Op<ReduceKernel> kernel("any");
  return bool_reduction(kernel, t, dims, keepdim);
}

Tensor count_nonzero(const Tensor& t, const Shape& dims) {
  return sum(ne(detach(t), scalar_tensor(0, t.dtype(), t.device())), dims);
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
