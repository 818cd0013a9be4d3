#include "kiln/ops/indexing.h"

#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/error.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/index.h"
#include "kiln/ops/promotion.h"
#include "kiln/ops/view.h"

namespace kiln {

using autograd::BackwardArgs;
using Kind = TensorIndex::Kind;

namespace {

constexpr const char* kZeroDimMessage =
    "] invalid index of a 0-dim tensor. Use `tensor.item()` in Python or `tensor.item<T>()` in C++ "
    "to convert a 0-dim tensor to a number";

bool is_mask(const Tensor& t) {
  return t.dtype() == ScalarType::Bool || t.dtype() == ScalarType::UInt8;
}

// How many dims of self an index consumes (Ellipsis expands to the rest).
int64_t consumed_dims(const TensorIndex& idx) {
  switch (idx.kind()) {
    case Kind::Integer:
    case Kind::Slice: return 1;
    case Kind::Tensor: {
      const Tensor& t = idx.tensor();
      if (is_mask(t)) return t.dim();
      return 1;
    }
    default: return 0;
  }
}

// The basic part of an index applied as views, and what is left for index()/index_put_()
// (one entry per dim of `view`, undefined = whole dim; empty when there is none).
struct Applied {
  Tensor view;
  TensorList advanced;
};

Applied apply_basic(const char* op, const Tensor& self, const TensorIndices& indices) {
  int64_t specified = 0, ellipses = 0;
  bool has_int = false;
  for (const auto& idx : indices) {
    specified += consumed_dims(idx);
    ellipses += idx.kind() == Kind::Ellipsis;
    has_int |= idx.kind() == Kind::Integer;
  }
  KILN_CHECK(self.dim() > 0 || !has_int, IndexError, "[", op, kZeroDimMessage);
  KILN_CHECK(specified <= self.dim(), IndexError, "[", op,
             "] too many indices for tensor of dimension ", self.dim());
  KILN_CHECK(ellipses <= 1, IndexError, "[", op,
             "] an index can only have a single ellipsis ('...')");
  Applied a{self, {}};
  Tensor& r = a.view;
  int64_t dim = 0;      // the dim of `r` the next index applies to
  int64_t covered = 0;  // dims of `r` the entries of a.advanced stand for
  auto record = [&](const Tensor& t, int64_t ndims) {
    for (; covered < dim; ++covered) a.advanced.emplace_back();
    a.advanced.push_back(t);
    covered += ndims;
    dim += ndims;
  };
  auto select_int = [&](int64_t i) {
    KILN_CHECK(r.dim() > 0, IndexError, "[", op, kZeroDimMessage);
    r = select(r, dim, i);
  };
  auto add_bool = [&](bool b) {
    r = unsqueeze(r, dim);
    // True indexes the new dim with [0], False with [] (an empty result).
    record(zeros({b ? 1 : 0}, ScalarType::Int64, r.device()), 1);
  };
  for (const auto& idx : indices) {
    switch (idx.kind()) {
      case Kind::None: r = unsqueeze(r, dim++); break;
      case Kind::Ellipsis: dim += self.dim() - specified; break;
      case Kind::Integer: select_int(idx.integer()); break;
      case Kind::Boolean: add_bool(idx.boolean()); break;
      case Kind::Slice:
        KILN_CHECK(r.dim() > 0, IndexError, "[", op,
                   "] slice() cannot be applied to a 0-dim tensor.");
        KILN_CHECK(idx.step() > 0, ValueError, "[", op, "] step must be greater than zero");
        r = slice(r, dim++, idx.start(), idx.stop(), idx.step());
        break;
      case Kind::Tensor: {
        const Tensor& t = idx.tensor();
        KILN_CHECK(is_integral(t.dtype(), true), IndexError, "[", op,
                   "] tensors used as indices must be long, int, byte or bool tensors");
        if (t.dim() == 0 && is_mask(t)) add_bool(item(t).to<bool>());
        else if (t.dim() == 0) select_int(item(t).to_int());
        else record(t, is_mask(t) ? t.dim() : 1);
        break;
      }
    }
  }
  // x[()] and x[...] still return a new tensor (an alias), as in PyTorch.
  if (r.is_same(self)) r = view(self, self.sizes());
  return a;
}

// value's leading size-1 dims are dropped so a (1, n) value fits an (n,) slot.
Tensor drop_leading_ones(const Tensor& value) {
  int64_t lead = 0;
  while (lead < value.dim() && value.sizes()[lead] == 1) ++lead;
  if (lead == 0) return value;
  return view(value, Shape(value.sizes().begin() + lead, value.sizes().end()));
}

}  // namespace

Tensor getitem(const Tensor& self, const TensorIndices& indices) {
  Applied a = apply_basic("getitem", self, indices);
  return a.advanced.empty() ? a.view : index(a.view, a.advanced);
}

Tensor& setitem_(Tensor& self, const TensorIndices& indices, const Tensor& value_in) {
  check_same_device({self, value_in}, "setitem");
  Tensor value = drop_leading_ones(value_in);
  // Integer results carry no gradient (as in PyTorch, which then drops the history).
  const bool grad = autograd::needs_grad({self, value}) && self.is_floating_point();
  if (grad) check_inplace(self, "setitem");
  bool advanced = false;
  {
    autograd::NoGradGuard no_grad;
    // A value that aliases self is read fully before any write.
    Tensor v = value.storage() == self.storage() ? clone(value) : value;
    Applied a = apply_basic("setitem", self, indices);
    advanced = !a.advanced.empty();
    if (advanced) {
      index_put_(a.view, a.advanced, v);
    } else {
      KILN_CHECK(is_expandable_to(v.sizes(), a.view.sizes()), ValueError,
                 "[setitem] shape mismatch: value tensor of shape ", value_in.sizes(),
                 " cannot be broadcast to indexing result of shape ", a.view.sizes());
      copy_(a.view, v);
    }
  }
  if (grad) {
    autograd::record(advanced ? "IndexPutBackward0" : "CopySlices", {self, value}, {self}, {},
                     [indices](const BackwardArgs& a) {
                       const Tensor& g = a.grad();
                       Tensor g_self, g_value;
                       if (a.needs(0))
                         g_self = setitem(g, indices, scalar_tensor(0, g.dtype(), g.device()));
                       if (a.needs(1)) g_value = getitem(g, indices);
                       return TensorList{g_self, g_value};
                     });
  }
  return self;
}

Tensor setitem(const Tensor& self, const TensorIndices& indices, const Tensor& value) {
  Tensor out = clone(self);
  return setitem_(out, indices, value);
}

}  // namespace kiln
