#include "kiln/tensor_iter.h"

#include "kiln/error.h"

namespace kiln {

TensorIter::TensorIter(std::initializer_list<Tensor> operands) {
  KILN_CHECK(operands.size() >= 1 && operands.size() <= kMaxOperands, Error,
             "[TensorIter] bad operand count ", operands.size());
  const Tensor& out = *operands.begin();
  const Shape& out_shape = out.sizes();
  const int nd = static_cast<int>(out_shape.size());
  KILN_CHECK(nd <= 16, ValueError, "[TensorIter] at most 16 dims are supported, got ", nd);
  numel_ = out.numel();

  // Per-operand byte strides over the output's dims (0 where broadcast).
  int t = 0;
  std::array<Shape, kMaxOperands> strides;
  for (const Tensor& op : operands) {
    const int od = static_cast<int>(op.dim());
    KILN_CHECK(od <= nd, Error, "[TensorIter] operand has more dims than the output");
    Shape s(nd, 0);
    const int64_t item = static_cast<int64_t>(op.itemsize());
    for (int d = 0; d < od; ++d) {
      const int64_t size = op.sizes()[d];
      const int64_t target = out_shape[nd - od + d];
      KILN_CHECK(size == target || size == 1, Error, "[TensorIter] operand shape ", op.sizes(),
                 " does not broadcast to ", out_shape);
      s[nd - od + d] = (size == 1 && target != 1) ? 0 : op.strides()[d] * item;
    }
    strides[t] = std::move(s);
    data_[t] = static_cast<char*>(op.data_ptr());
    dtypes_[t] = op.dtype();
    ++t;
  }
  ntensors_ = t;

  // Drop size-1 dims and merge dim d into d+1 when every operand is linear across them.
  Shape shape;
  std::array<Shape, kMaxOperands> merged;
  for (int d = 0; d < nd; ++d) {
    if (out_shape[d] == 1) continue;
    if (!shape.empty()) {
      bool can_merge = true;
      for (int k = 0; k < ntensors_; ++k)
        can_merge &= merged[k].back() == strides[k][d] * out_shape[d];
      if (can_merge) {
        shape.back() *= out_shape[d];
        for (int k = 0; k < ntensors_; ++k) merged[k].back() = strides[k][d];
        continue;
      }
    }
    shape.push_back(out_shape[d]);
    for (int k = 0; k < ntensors_; ++k) merged[k].push_back(strides[k][d]);
  }
  if (shape.empty()) {
    shape.push_back(numel_ == 0 ? 0 : 1);
    for (int k = 0; k < ntensors_; ++k) merged[k].push_back(0);
  }
  shape_ = std::move(shape);
  strides_ = std::move(merged);
}

}  // namespace kiln
