#pragma once
#include <optional>
#include <vector>

#include "kiln/tensor.h"

namespace kiln {

// One item of a Python indexing expression `t[a, b, ...]` (PyTorch's at::indexing).
struct KILN_API TensorIndex {
  enum class Kind : uint8_t { None, Ellipsis, Integer, Boolean, Slice, Tensor };

  static TensorIndex none() { return TensorIndex(Kind::None); }
  static TensorIndex ellipsis() { return TensorIndex(Kind::Ellipsis); }
  static TensorIndex integer(int64_t i) {
    TensorIndex t(Kind::Integer);
    t.integer_ = i;
    return t;
  }
  static TensorIndex boolean(bool b) {
    TensorIndex t(Kind::Boolean);
    t.integer_ = b;
    return t;
  }
  // Python slice semantics (start/stop clamp, may be negative); step must be > 0.
  static TensorIndex slice(std::optional<int64_t> start, std::optional<int64_t> stop,
                           int64_t step = 1) {
    TensorIndex t(Kind::Slice);
    t.start_ = start;
    t.stop_ = stop;
    t.integer_ = step;
    return t;
  }
  static TensorIndex tensor(Tensor tensor) {
    TensorIndex t(Kind::Tensor);
    t.tensor_ = std::move(tensor);
    return t;
  }

  Kind kind() const { return kind_; }
  int64_t integer() const { return integer_; }
  bool boolean() const { return integer_ != 0; }
  std::optional<int64_t> start() const { return start_; }
  std::optional<int64_t> stop() const { return stop_; }
  int64_t step() const { return integer_; }
  const Tensor& tensor() const { return tensor_; }

 private:
  explicit TensorIndex(Kind k) : kind_(k) {}
  Kind kind_;
  int64_t integer_ = 0;  // the integer, the bool or the slice step
  std::optional<int64_t> start_, stop_;
  Tensor tensor_;
};
using TensorIndices = std::vector<TensorIndex>;

// self[indices] with PyTorch's semantics: ints, slices, None, Ellipsis and
// 0-dim integer tensors give a view; integer/bool tensors (advanced indexing)
// give a copy through index(). Differentiable.
KILN_API Tensor getitem(const Tensor& self, const TensorIndices& indices);
// self[indices] = value (broadcast after dropping value's leading size-1 dims).
// Advanced indices go through index_put_. On a tensor that needs grad the
// write is recorded as one node whose backward zeros the written region for
// self and reads it for value (see Note [In-place and autograd]).
KILN_API Tensor& setitem_(Tensor& self, const TensorIndices& indices, const Tensor& value);
// Out of place: a copy of self with value written at indices.
KILN_API Tensor setitem(const Tensor& self, const TensorIndices& indices, const Tensor& value);

}  // namespace kiln
