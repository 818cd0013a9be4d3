#include "kiln/ops/promotion.h"

#include <optional>

#include "kiln/error.h"

namespace kiln {
namespace {

int category(ScalarType t) { return t == ScalarType::Bool ? 0 : is_floating(t) ? 2 : 1; }

std::optional<ScalarType> combine(std::optional<ScalarType> higher,
                                  std::optional<ScalarType> lower) {
  if (!higher) return lower;
  if (!lower) return higher;
  if (category(*lower) > category(*higher)) return promote_types(*higher, *lower);
  return higher;
}

template <class Range>
ScalarType result_type_impl(const Range& operands) {
  std::optional<ScalarType> dim_result, zero_result, wrapped_result, wrapped_stored;
  auto update = [](std::optional<ScalarType>& r, ScalarType t) {
    r = r ? promote_types(*r, t) : t;
  };
  for (const Tensor& t : operands) {
    if (!t.defined()) continue;
    if (t.impl()->is_wrapped_number) {
      // Wrapped numbers are stored as float64/int64/bool but count as the default dtype.
      ScalarType d = is_floating(t.dtype()) ? default_float_dtype() : t.dtype();
      update(wrapped_result, d);
      update(wrapped_stored, t.dtype());
    } else if (t.dim() == 0) {
      update(zero_result, t.dtype());
    } else {
      update(dim_result, t.dtype());
    }
  }
  // Only wrapped numbers (inside backward formulas, e.g. the exponent of x ** 0.3):
  // keep their full precision; the result still combines weakly with tensors.
  if (!dim_result && !zero_result && wrapped_stored) return *wrapped_stored;
  auto r = combine(dim_result, combine(zero_result, wrapped_result));
  KILN_CHECK(r.has_value(), ValueError, "[result_type] needs at least one tensor");
  return *r;
}

}  // namespace

ScalarType result_type(std::initializer_list<Tensor> operands) {
  return result_type_impl(operands);
}
ScalarType result_type(const TensorList& operands) { return result_type_impl(operands); }

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    KILN_CHECK(da == db || da == 1 || db == 1, ValueError, "[", op, "] shapes ", a, " and ", b,
               " are not broadcastable (mismatch at dim ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

bool is_expandable_to(const Shape& shape, const Shape& target) {
  if (shape.size() > target.size()) return false;
  const size_t off = target.size() - shape.size();
  for (size_t i = 0; i < shape.size(); ++i)
    if (shape[i] != target[off + i] && shape[i] != 1) return false;
  return true;
}

void check_same_device(std::initializer_list<Tensor> tensors, const char* op) {
  const Tensor* first = nullptr;
  for (const Tensor& t : tensors) {
    if (!t.defined() || t.impl()->is_wrapped_number) continue;
    if (!first) {
      first = &t;
      continue;
    }
    KILN_CHECK(t.device() == first->device(), Error, "[", op,
               "] expected all tensors to be on the same device, but found at least two "
               "devices, ",
               first->device(), " and ", t.device());
  }
}

}  // namespace kiln
