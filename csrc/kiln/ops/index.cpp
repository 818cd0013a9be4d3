#include "kiln/ops/index.h"

#include "kiln/autocast.h"
#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/dispatch.h"
#include "kiln/error.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/promotion.h"
#include "kiln/ops/view.h"

namespace kiln {

using autograd::BackwardArgs;

namespace {

// Kernels see int64 index tensors of one shape, each indexing dim dims[k] of self
// (see Note [Advanced index layout] in cpu/index.cpp).
using IndexKernel = void(const Tensor& out, const Tensor& self, const TensorList& indices,
                         const Shape& dims);
using IndexPutKernel = void(const Tensor& self, const Tensor& values, const TensorList& indices,
                            const Shape& dims, bool accumulate);
// Positions of true elements of a bool mask: int64 [mask.dim(), count].
using MaskIndicesKernel = Tensor(const Tensor& mask);

struct AdvancedIndex {
  TensorList indices;  // int64, contiguous, all of shape index_shape
  Shape dims;          // increasing
  Shape index_shape;
  Shape result_shape;

  // One entry per dim of self up to the last indexed one (undefined = whole dim),
  // masks already expanded, as index() and index_put_() accept them.
  TensorList positional() const {
    TensorList out(dims.back() + 1);
    for (size_t k = 0; k < dims.size(); ++k) out[dims[k]] = indices[k];
    return out;
  }
};

bool is_mask(ScalarType t) { return t == ScalarType::Bool || t == ScalarType::UInt8; }

AdvancedIndex prepare(const char* op, const Tensor& self, const TensorList& indices) {
  AdvancedIndex ai;
  TensorList raw;
  int64_t dim = 0;
  for (const Tensor& given : indices) {
    KILN_CHECK(dim < self.dim() || !given.defined(), IndexError, "[", op,
               "] too many indices for tensor of dimension ", self.dim(), " (got ",
               indices.size(), ")");
    if (!given.defined()) {
      ++dim;
      continue;
    }
    // CPU indices (Python lists and NumPy arrays become CPU tensors) move to the
    // indexed tensor's device, as in PyTorch.
    const Tensor idx = given.device().is_cpu() && !self.device().is_cpu()
                           ? to_device(detach(given), self.device())
                           : given;
    KILN_CHECK(idx.device() == self.device(), ValueError, "[", op,
               "] indices should be on the same device as the indexed tensor (", self.device(),
               "), got ", idx.device());
    if (is_mask(idx.dtype())) {
      KILN_CHECK(idx.dim() > 0, IndexError, "[", op,
                 "] a 0-dim bool index is not supported here; index with a Python bool instead");
      KILN_CHECK(dim + idx.dim() <= self.dim(), IndexError, "[", op,
                 "] too many indices for tensor of dimension ", self.dim());
      for (int64_t j = 0; j < idx.dim(); ++j)
        KILN_CHECK(idx.sizes()[j] == self.sizes()[dim + j], IndexError, "[", op,
                   "] The shape of the mask ", idx.sizes(), " at index ", j,
                   " does not match the shape of the indexed tensor ", self.sizes(), " at index ",
                   dim + j);
      static const dispatch::Op<MaskIndicesKernel> mask_indices("mask_indices");
      Tensor pos = mask_indices(self.device(), contiguous(to_dtype(detach(idx), ScalarType::Bool)));
      for (int64_t j = 0; j < idx.dim(); ++j) {
        raw.push_back(select(pos, 0, j));
        ai.dims.push_back(dim++);
      }
      continue;
    }
    KILN_CHECK(is_integral(idx.dtype(), false), IndexError, "[", op,
               "] tensors used as indices must be long, int, byte or bool tensors, got ",
               idx.dtype());
    raw.push_back(to_dtype(detach(idx), ScalarType::Int64));
    ai.dims.push_back(dim++);
  }
  KILN_CHECK(!raw.empty(), IndexError, "[", op, "] expects at least one index tensor");
  ai.index_shape = raw[0].sizes();
  for (const Tensor& r : raw) ai.index_shape = broadcast_shapes(ai.index_shape, r.sizes(), op);
  for (const Tensor& r : raw) ai.indices.push_back(contiguous(expand(r, ai.index_shape)));
  // Adjacent indexed dims are replaced in place by
  // the index shape; separated ones move it to the front.
  bool adjacent = true;
  for (size_t k = 1; k < ai.dims.size(); ++k) adjacent &= ai.dims[k] == ai.dims[k - 1] + 1;
  const int64_t insert_at = adjacent ? ai.dims[0] : 0;
  size_t next = 0;
  for (int64_t d = 0; d < self.dim(); ++d) {
    if (next < ai.dims.size() && ai.dims[next] == d) {
      ++next;
      continue;
    }
    ai.result_shape.push_back(self.sizes()[d]);
  }
  ai.result_shape.insert(ai.result_shape.begin() + insert_at, ai.index_shape.begin(),
                         ai.index_shape.end());
  return ai;
}

}  // namespace

Tensor index(const Tensor& self, const TensorList& indices) {
  AdvancedIndex ai = prepare("index", self, indices);
  Tensor out = empty(ai.result_shape, self.dtype(), self.device());
  static const dispatch::Op<IndexKernel> kernel("index");
  kernel(self.device(), out, self, ai.indices, ai.dims);
  if (autograd::needs_grad({self})) {
    const Shape in = self.sizes();
    autograd::record("IndexBackward0", {self}, {out}, {},
                     [in, idx = ai.positional()](const BackwardArgs& a) {
                       Tensor z = zeros(in, a.grad().dtype(), a.grad().device());
                       return TensorList{index_put(z, idx, a.grad(), /*accumulate=*/true)};
                     });
  }
  return out;
}

Tensor& index_put_(Tensor& self, const TensorList& indices, const Tensor& values,
                   bool accumulate) {
  check_same_device({self, values}, "index_put_");
  KILN_CHECK(values.dtype() == self.dtype(), TypeError,
             "[index_put_] Index put requires the source and destination dtypes match, got ",
             self.dtype(), " for the destination and ", values.dtype(), " for the source.");
  AdvancedIndex ai = prepare("index_put_", self, indices);
  KILN_CHECK(is_expandable_to(values.sizes(), ai.result_shape), ValueError,
             "[index_put_] shape mismatch: value tensor of shape ", values.sizes(),
             " cannot be broadcast to indexing result of shape ", ai.result_shape);
  const bool grad = autograd::needs_grad({self, values});
  if (grad) check_inplace(self, "index_put_");
  // Values that alias self are read fully before any write.
  Tensor v = expand(detach(values), ai.result_shape);
  if (values.storage() == self.storage()) v = clone(v);
  static const dispatch::Op<IndexPutKernel> kernel("index_put");
  kernel(self.device(), self, v, ai.indices, ai.dims, accumulate);
  self.bump_version();
  if (grad) {
    autograd::record("IndexPutBackward0", {self, values}, {self}, {},
                     [accumulate, idx = ai.positional()](const BackwardArgs& a) {
                       Tensor g_self, g_values;
                       if (a.needs(0))
                         g_self = accumulate ? a.grad()
                                             : index_put(a.grad(), idx,
                                                         scalar_tensor(0, a.grad().dtype(),
                                                                       a.grad().device()));
                       if (a.needs(1)) g_values = index(a.grad(), idx);
                       return TensorList{g_self, g_values};
                     });
  }
  return self;
}

Tensor index_put(const Tensor& self, const TensorList& indices, const Tensor& values,
                 bool accumulate) {
  KILN_AUTOCAST(kPromoteCuda, index_put, self, indices, values, accumulate);
  Tensor out = clone(self);
  return index_put_(out, indices, values, accumulate);
}

}  // namespace kiln
