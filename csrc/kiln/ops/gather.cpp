#include "kiln/ops/gather.h"

#include <algorithm>

#include "kiln/autocast.h"
#include "kiln/autograd/node.h"
#include "kiln/dispatch.h"
#include "kiln/error.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/join.h"
#include "kiln/ops/promotion.h"
#include "kiln/ops/view.h"

namespace kiln {

using autograd::BackwardArgs;

namespace {

using GatherKernel = void(const Tensor&, const Tensor&, const Tensor&, int64_t, const char*);
using ScatterKernel = void(const Tensor&, const Tensor&, const Tensor&, int64_t, ScatterReduce,
                           const char*);

// 0-d tensors index like 1-d tensors of one element (PyTorch's rule).
int64_t ndim_1d(const Tensor& t) { return std::max<int64_t>(t.dim(), 1); }
int64_t size_1d(const Tensor& t, int64_t d) { return t.dim() == 0 ? 1 : t.sizes()[d]; }

// The index as int64 (int32 is converted where PyTorch accepts it), without history.
Tensor int64_index(const Tensor& index, const char* op, bool allow_int32) {
  if (index.dtype() == ScalarType::Int64) return detach(index);
  KILN_CHECK(allow_int32 && index.dtype() == ScalarType::Int32, TypeError, "[", op,
             "] expected index to have dtype int64", allow_int32 ? " or int32" : "", ", got ",
             index.dtype());
  return to_dtype(detach(index), ScalarType::Int64);
}

// A 1-d (or one-element) index seen with `shape`, varying only along `dim`.
Tensor index_along(const Tensor& index, const Shape& shape, int64_t dim) {
  Shape strides(shape.size(), 0);
  if (!shape.empty() && index.dim() > 0) strides[dim] = index.strides()[0];
  return make_tensor(index.storage(), shape, strides, index.storage_offset(), index.dtype());
}

// `value` in self's dtype, seen with index's shape (zero strides).
Tensor value_like_index(Scalar value, const Tensor& self, const Tensor& index) {
  Tensor v = scalar_tensor(value, self.dtype(), self.device());
  return make_tensor(v.storage(), index.sizes(), Shape(index.dim(), 0), 0, self.dtype());
}

// PyTorch's shape rule for gather/scatter: as many dims as `self`, no larger than
// `self` apart from `dim`, and no larger than `src` (when given) anywhere.
void check_index_shape(const char* op, const char* self_name, const Tensor& self, int64_t dim,
                       const Tensor& index, const Tensor* src) {
  KILN_CHECK(ndim_1d(index) == ndim_1d(self) && (!src || ndim_1d(*src) == ndim_1d(self)),
             ValueError, "[", op, "] index tensor must have the same number of dimensions as ",
             self_name, src ? " and src" : "", " tensors, got index of shape ", index.sizes(),
             " and ", self_name, " of shape ", self.sizes(),
             src ? detail::concat(" and src of shape ", src->sizes()) : "");
  for (int64_t d = 0; d < ndim_1d(index); ++d) {
    const int64_t n = size_1d(index, d);
    KILN_CHECK((d == dim || n <= size_1d(self, d)) && (!src || n <= size_1d(*src, d)), ValueError,
               "[", op, "] expected index ", index.sizes(), " to be no larger than ", self_name,
               " ", self.sizes(), " apart from dimension ", dim,
               src ? detail::concat(" and to be no larger than src ", src->sizes()) : "");
  }
}

void run_gather(const Tensor& out, const Tensor& input, const Tensor& index, int64_t dim,
                const char* op) {
  static const dispatch::Op<GatherKernel> kernel("gather");
  kernel(input.device(), out, input, index, dim, op);
}

void run_scatter(const Tensor& self, const Tensor& index, const Tensor& src, int64_t dim,
                 ScatterReduce reduce, const char* op) {
  static const dispatch::Op<ScatterKernel> kernel("scatter");
  kernel(self.device(), self, index, src, dim, reduce, op);
}

// `g` padded with trailing zeros up to `shape` (src may be larger than index in scatter).
Tensor pad_to(Tensor g, const Shape& shape) {
  for (int64_t d = 0; d < g.dim(); ++d) {
    if (g.sizes()[d] == shape[d]) continue;
    Shape z = g.sizes();
    z[d] = shape[d] - z[d];
    g = cat({g, zeros(z, g.dtype(), g.device())}, d);
  }
  return g;
}

Tensor gather_impl(const char* op, const Tensor& input, int64_t dim, const Tensor& index) {
  check_same_device({input, index}, op);
  Tensor idx = int64_index(index, op, true);
  const int64_t d = wrap_dim(dim, input.dim(), op);
  check_index_shape(op, "input", input, d, index, nullptr);
  Tensor out = empty(index.sizes(), input.dtype(), input.device());
  run_gather(out, input, idx, d, op);
  if (autograd::needs_grad({input})) {
    const Shape in_shape = input.sizes();
    autograd::record("GatherBackward0", {input}, {out}, {idx}, [=](const BackwardArgs& a) {
      Tensor zero = zeros(in_shape, a.grad().dtype(), a.grad().device());
      return TensorList{scatter_add(zero, d, a.saved[0], a.grad())};
    });
  }
  return out;
}

// Scatter's checked arguments: the wrapped dim, the int64 index and what to scatter.
struct ScatterArgs {
  int64_t dim;
  Tensor index;
  Tensor src;
};

// Checks a scatter of `src`, or of `value` when src is undefined.
ScatterArgs scatter_args(const char* op, const Tensor& input, int64_t dim, const Tensor& index,
                         const Tensor& src, Scalar value) {
  check_same_device({input, index}, op);
  if (src.defined()) {
    check_same_device({input, src}, op);
    KILN_CHECK(src.dtype() == input.dtype(), TypeError, "[", op,
               "] expected self.dtype to be equal to src.dtype, got ", input.dtype(), " and ",
               src.dtype());
  }
  Tensor idx = int64_index(index, op, true);
  const int64_t d = wrap_dim(dim, input.dim(), op);
  check_index_shape(op, "self", input, d, index, src.defined() ? &src : nullptr);
  return {d, idx, src.defined() ? detach(src) : value_like_index(value, input, idx)};
}

Tensor scatter_impl(const char* op, const Tensor& input, int64_t dim, const Tensor& index,
                    const Tensor& src, Scalar value, ScatterReduce reduce) {
  const ScatterArgs s = scatter_args(op, input, dim, index, src, value);
  Tensor out = clone(detach(input));
  run_scatter(out, s.index, s.src, s.dim, reduce, op);
  if (autograd::needs_grad({input, src})) {
    KILN_CHECK(reduce != ScatterReduce::Multiply, NotImplementedError, "[", op,
               "] the derivative for reduce='multiply' is not implemented");
    const bool add = reduce == ScatterReduce::Add;
    const Shape src_shape = src.defined() ? src.sizes() : Shape{};
    const int64_t d = s.dim;
    const char* name = add ? "ScatterAddBackward0" : src.defined() ? "ScatterBackward0"
                                                                   : "ScatterBackward1";
    autograd::record(name, {input, src}, {out}, {s.index}, [=](const BackwardArgs& a) {
      const Tensor& i = a.saved[0];
      Tensor gi, gs;
      if (a.needs(0)) gi = add ? a.grad() : scatter(a.grad(), d, i, Scalar(0));
      if (a.needs(1)) gs = pad_to(gather(a.grad(), d, i), src_shape);
      return TensorList{gi, gs};
    });
  }
  return out;
}

// In-place scatter; through the out-of-place op under autograd (Note [In-place and autograd]).
Tensor& scatter_inplace(const char* op, Tensor& self, int64_t dim, const Tensor& index,
                        const Tensor& src, Scalar value, ScatterReduce reduce) {
  if (autograd::needs_grad({self, src})) {
    check_inplace(self, op);
    rebase_history(self, scatter_impl(op, self, dim, index, src, value, reduce));
    return self;
  }
  const ScatterArgs s = scatter_args(op, self, dim, index, src, value);
  run_scatter(self, s.index, s.src, s.dim, reduce, op);
  self.bump_version();
  return self;
}

// index_add's checked arguments: index_add is a scatter-add of (alpha * source) with
// the 1-d index repeated across source's other dims.
struct IndexAddArgs {
  int64_t dim;
  Tensor index;  // int64, 1-d
  Tensor src;    // alpha * source, detached
  bool scaled;
};

IndexAddArgs index_add_args(const char* op, const Tensor& input, int64_t dim,
                            const Tensor& index, const Tensor& source, Scalar alpha) {
  check_same_device({input, index, source}, op);
  Tensor idx = int64_index(index, op, true);
  KILN_CHECK(index.dim() <= 1, IndexError, "[", op, "] index is supposed to be a vector, got "
             "shape ", index.sizes());
  const int64_t d = wrap_dim(dim, input.dim(), op);
  KILN_CHECK(source.dtype() == input.dtype(), TypeError, "[", op, "] self (", input.dtype(),
             ") and source (", source.dtype(), ") must have the same scalar type");
  KILN_CHECK(!alpha.is_floating() || is_floating(input.dtype()), TypeError, "[", op,
             "] for integral input tensors, argument alpha must not be a floating point number");
  bool same = ndim_1d(source) == ndim_1d(input);
  for (int64_t k = 0; same && k < ndim_1d(input); ++k)
    same = k == d || size_1d(source, k) == size_1d(input, k);
  KILN_CHECK(same, ValueError, "[", op, "] source tensor shape must match self tensor shape, "
             "excluding the specified dimension. Got self.shape = ", input.sizes(),
             " source.shape = ", source.sizes());
  KILN_CHECK(index.numel() == size_1d(source, d), ValueError, "[", op, "] number of indices (",
             index.numel(), ") should be equal to source.size(dim) (", size_1d(source, d),
             "), for dim ", d);
  const bool scaled = alpha.is_floating() || alpha.to_int() != 1;
  Tensor src = detach(source);
  if (scaled) src = to_dtype(src * alpha, input.dtype());
  return {d, idx, src, scaled};
}

void run_index_add(const Tensor& self, const IndexAddArgs& s, const char* op) {
  run_scatter(self, index_along(s.index, s.src.sizes(), s.dim), s.src, s.dim, ScatterReduce::Add,
              op);
}

Tensor index_add_impl(const char* op, const Tensor& input, int64_t dim, const Tensor& index,
                      const Tensor& source, Scalar alpha) {
  const IndexAddArgs s = index_add_args(op, input, dim, index, source, alpha);
  Tensor out = clone(detach(input));
  run_index_add(out, s, op);
  if (autograd::needs_grad({input, source})) {
    const int64_t d = s.dim;
    const bool scaled = s.scaled;
    autograd::record("IndexAddBackward0", {input, source}, {out}, {s.index},
                     [=](const BackwardArgs& a) {
                       Tensor gs;
                       if (a.needs(1)) {
                         gs = index_select(a.grad(), d, a.saved[0]);
                         if (scaled) gs = gs * alpha;
                       }
                       return TensorList{a.needs(0) ? a.grad() : Tensor(), gs};
                     });
  }
  return out;
}

}  // namespace

ScatterReduce parse_scatter_reduce(const std::string& reduce) {
  if (reduce.empty()) return ScatterReduce::None;
  if (reduce == "add") return ScatterReduce::Add;
  if (reduce == "multiply") return ScatterReduce::Multiply;
  throw ValueError("[scatter] reduce argument must be either 'add' or 'multiply', got '" +
                   reduce + "'");
}

Tensor gather(const Tensor& input, int64_t dim, const Tensor& index) {
  return gather_impl("gather", input, dim, index);
}

Tensor scatter(const Tensor& input, int64_t dim, const Tensor& index, const Tensor& src,
               ScatterReduce reduce) {
  KILN_CHECK(src.defined(), TypeError, "[scatter] src is None");
  return scatter_impl("scatter", input, dim, index, src, 0, reduce);
}
Tensor scatter(const Tensor& input, int64_t dim, const Tensor& index, Scalar value,
               ScatterReduce reduce) {
  return scatter_impl("scatter", input, dim, index, Tensor(), value, reduce);
}
Tensor& scatter_(Tensor& self, int64_t dim, const Tensor& index, const Tensor& src,
                 ScatterReduce reduce) {
  KILN_CHECK(src.defined(), TypeError, "[scatter_] src is None");
  return scatter_inplace("scatter_", self, dim, index, src, 0, reduce);
}
Tensor& scatter_(Tensor& self, int64_t dim, const Tensor& index, Scalar value,
                 ScatterReduce reduce) {
  return scatter_inplace("scatter_", self, dim, index, Tensor(), value, reduce);
}
Tensor scatter_add(const Tensor& input, int64_t dim, const Tensor& index, const Tensor& src) {
  KILN_AUTOCAST(kPromoteCuda, scatter_add, input, dim, index, src);
  KILN_CHECK(src.defined(), TypeError, "[scatter_add] src is None");
  return scatter_impl("scatter_add", input, dim, index, src, 0, ScatterReduce::Add);
}
Tensor& scatter_add_(Tensor& self, int64_t dim, const Tensor& index, const Tensor& src) {
  KILN_CHECK(src.defined(), TypeError, "[scatter_add_] src is None");
  return scatter_inplace("scatter_add_", self, dim, index, src, 0, ScatterReduce::Add);
}

Tensor index_select(const Tensor& input, int64_t dim, const Tensor& index) {
  check_same_device({input, index}, "index_select");
  Tensor idx = int64_index(index, "index_select", true);
  KILN_CHECK(index.dim() <= 1, IndexError, "[index_select] index is supposed to be a vector, "
             "got shape ", index.sizes());
  const int64_t d = wrap_dim(dim, input.dim(), "index_select");
  KILN_CHECK(input.dim() > 0 || index.numel() == 1, IndexError, "[index_select] index to a "
             "0-dim tensor can have only 1 value, got ", index.numel());
  Shape shape = input.sizes();
  if (input.dim() > 0) shape[d] = index.numel();
  Tensor out = empty(shape, input.dtype(), input.device());
  run_gather(out, input, index_along(idx, shape, d), d, "index_select");
  if (autograd::needs_grad({input})) {
    const Shape in_shape = input.sizes();
    autograd::record("IndexSelectBackward0", {input}, {out}, {idx}, [=](const BackwardArgs& a) {
      Tensor zero = zeros(in_shape, a.grad().dtype(), a.grad().device());
      return TensorList{index_add(zero, d, a.saved[0], a.grad())};
    });
  }
  return out;
}

Tensor index_add(const Tensor& input, int64_t dim, const Tensor& index, const Tensor& source,
                 Scalar alpha) {
  return index_add_impl("index_add", input, dim, index, source, alpha);
}

Tensor& index_add_(Tensor& self, int64_t dim, const Tensor& index, const Tensor& source,
                   Scalar alpha) {
  if (autograd::needs_grad({self, source})) {
    check_inplace(self, "index_add_");
    rebase_history(self, index_add_impl("index_add_", self, dim, index, source, alpha));
    return self;
  }
  run_index_add(self, index_add_args("index_add_", self, dim, index, source, alpha), "index_add_");
  self.bump_version();
  return self;
}

Tensor take_along_dim(const Tensor& input, const Tensor& indices, std::optional<int64_t> dim) {
  KILN_CHECK(indices.dtype() == ScalarType::Int64, TypeError,
             "[take_along_dim] dtype of indices should be int64, got ", indices.dtype());
  if (!dim) return gather_impl("take_along_dim", reshape(input, {-1}), 0, reshape(indices, {-1}));
  KILN_CHECK(input.dim() == indices.dim(), ValueError, "[take_along_dim] input and indices "
             "should have the same number of dimensions, but got ", input.dim(),
             " dimensions for input, and ", indices.dim(), " dimensions for indices");
  const int64_t d = wrap_dim(*dim, input.dim(), "take_along_dim");
  // Broadcast everything but dim, where input keeps its size and indices theirs.
  Shape in_shape = input.sizes();
  if (input.dim() > 0) in_shape[d] = indices.sizes()[d];
  const Shape shape = broadcast_shapes(in_shape, indices.sizes(), "take_along_dim");
  Shape in_target = shape;
  if (input.dim() > 0) in_target[d] = input.sizes()[d];
  return gather_impl("take_along_dim", expand(input, in_target), d, expand(indices, shape));
}

Tensor one_hot(const Tensor& t, int64_t num_classes) {
  KILN_CHECK(t.dtype() == ScalarType::Int64, TypeError, "[one_hot] is only applicable to index "
             "tensors of dtype int64, got ", t.dtype());
  KILN_CHECK(num_classes >= -1, ValueError, "[one_hot] num_classes must be -1 or non-negative, "
             "got ", num_classes);
  if (t.numel() > 0) {
    int64_t lo = 0, hi = 0;
    static const dispatch::Op<void(const Tensor&, int64_t*, int64_t*)> range("index_range");
    range(t.device(), t, &lo, &hi);
    KILN_CHECK(lo >= 0, ValueError, "[one_hot] class values must be non-negative, got ", lo);
    if (num_classes == -1) num_classes = hi + 1;
    KILN_CHECK(hi < num_classes, ValueError, "[one_hot] class values must be smaller than "
               "num_classes (", num_classes, "), got ", hi);
  }
  KILN_CHECK(num_classes >= 0, ValueError, "[one_hot] can not infer the total number of classes "
             "from an empty tensor");
  Shape shape = t.sizes();
  shape.push_back(num_classes);
  Tensor out = zeros(shape, ScalarType::Int64, t.device());
  Tensor idx = unsqueeze(detach(t), -1);
  if (t.numel() > 0) run_scatter(out, idx, value_like_index(1, out, idx), t.dim(),
                                 ScatterReduce::None, "one_hot");
  return out;
}

Tensor nonzero(const Tensor& t) {
  static const dispatch::Op<Tensor(const Tensor&)> kernel("nonzero");
  return kernel(t.device(), contiguous(detach(t)));
}

TensorList nonzero_tuple(const Tensor& t) {
  Tensor nz = nonzero(t.dim() == 0 ? reshape(detach(t), {1}) : t);
  TensorList columns;
  for (int64_t i = 0; i < nz.sizes()[1]; ++i) columns.push_back(contiguous(select(nz, 1, i)));
  return columns;
}

Tensor argwhere(const Tensor& t) { return nonzero(t); }

Tensor masked_select(const Tensor& input, const Tensor& mask) {
  check_same_device({input, mask}, "masked_select");
  KILN_CHECK(mask.dtype() == ScalarType::Bool, TypeError, "[masked_select] expected a bool "
             "mask, got ", mask.dtype());
  const Shape shape = broadcast_shapes(input.sizes(), mask.sizes(), "masked_select");
  Tensor positions = reshape(nonzero(reshape(expand(detach(mask), shape), {-1})), {-1});
  return index_select(reshape(expand(input, shape), {-1}), 0, positions);
}

}  // namespace kiln
