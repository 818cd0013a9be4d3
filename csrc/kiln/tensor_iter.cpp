#include "kiln/tensor_iter.h"

#include "kiln/error.h"

namespace kiln {

TensorIter::TensorIter(std::initializer_list<Tensor> operands) {
  KILN_CHECK(operands.size() >= 1 && operands.size() <= kMaxOperands, Error,
             "[TensorIter] bad operand count ", operands.size());
  const Tensor& out = *operands.begin();
  const Shape& out_shape = out.sizes();
  const int nd = static_cast<int>(out_shape.size());
  KILN_CHECK(nd <= kMaxDims, ValueError, "[TensorIter] at most ", kMaxDims,
             " dims are supported, got ", nd);
  numel_ = out.numel();

  // Per-operand byte strides over the output's dims (0 where broadcast).
  int64_t strides[kMaxOperands][kMaxDims];
  int t = 0;
  for (const Tensor& op : operands) {
    const int od = static_cast<int>(op.dim());
    KILN_CHECK(od <= nd, Error, "[TensorIter] operand has more dims than the output");
    const int64_t item = static_cast<int64_t>(op.itemsize());
    for (int d = 0; d < nd - od; ++d) strides[t][d] = 0;
    for (int d = 0; d < od; ++d) {
      const int64_t size = op.sizes()[d];
      const int64_t target = out_shape[nd - od + d];
      KILN_CHECK(size == target || size == 1, Error, "[TensorIter] operand shape ", op.sizes(),
                 " does not broadcast to ", out_shape);
      strides[t][nd - od + d] = (size == 1 && target != 1) ? 0 : op.strides()[d] * item;
    }
    data_[t] = static_cast<char*>(op.data_ptr());
    dtypes_[t] = op.dtype();
    ++t;
  }
  ntensors_ = t;

  // Drop size-1 dims and merge dim d into the previous one when every operand is linear
  // across them.
  int n = 0;
  for (int d = 0; d < nd; ++d) {
    if (out_shape[d] == 1) continue;
    if (n > 0) {
      bool can_merge = true;
      for (int k = 0; k < ntensors_; ++k)
        can_merge &= strides_[k][n - 1] == strides[k][d] * out_shape[d];
      if (can_merge) {
        shape_[n - 1] *= out_shape[d];
        for (int k = 0; k < ntensors_; ++k) strides_[k][n - 1] = strides[k][d];
        continue;
      }
    }
    shape_[n] = out_shape[d];
    for (int k = 0; k < ntensors_; ++k) strides_[k][n] = strides[k][d];
    ++n;
  }
  if (n == 0) {
    shape_[0] = numel_ == 0 ? 0 : 1;
    for (int k = 0; k < ntensors_; ++k) strides_[k][0] = 0;
    n = 1;
  }
  ndim_ = n;
}

}  // namespace kiln
