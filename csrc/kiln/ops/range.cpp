#include "kiln/ops/range.h"

#include <cmath>

#include "kiln/dispatch.h"
#include "kiln/error.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/view.h"

namespace kiln {

Tensor arange(Scalar start, Scalar end, Scalar step, std::optional<ScalarType> dtype,
              Device device) {
  const bool all_integral = !start.is_floating() && !end.is_floating() && !step.is_floating();
  const ScalarType out_dtype = dtype ? *dtype : (all_integral ? ScalarType::Int64
                                                              : default_float_dtype());
  KILN_CHECK(out_dtype != ScalarType::Bool, TypeError, "[arange] not implemented for bool");
  KILN_CHECK(std::isfinite(start.to_double()) && std::isfinite(end.to_double()), ValueError,
             "[arange] unsupported range: ", start.to_double(), " -> ", end.to_double());
  // Integral outputs see the arguments truncated to int64, as in PyTorch.
  const bool int_out = is_integral(out_dtype, /*include_bool=*/false);
  const double s = int_out ? static_cast<double>(start.to_int()) : start.to_double();
  const double e = int_out ? static_cast<double>(end.to_int()) : end.to_double();
  const double st = int_out ? static_cast<double>(step.to_int()) : step.to_double();
  KILN_CHECK(st != 0, ValueError, "[arange] step must be nonzero");
  KILN_CHECK((st > 0 && e >= s) || (st < 0 && e <= s), ValueError,
             "[arange] upper bound and lower bound inconsistent with step sign: start=",
             start.to_double(), ", end=", end.to_double(), ", step=", step.to_double());
  double size_d;
  if (out_dtype == ScalarType::Int64) {
    // Exact in int64 (doubles lose precision past 2^53).
    const int64_t span = end.to_int() - start.to_int(), si = step.to_int();
    size_d = static_cast<double>(span / si + (span % si != 0 ? 1 : 0));
  } else {
    size_d = std::ceil((end.to_double() - start.to_double()) / step.to_double());
  }
  KILN_CHECK(size_d >= 0 && size_d <= static_cast<double>(int64_t(1) << 62), ValueError,
             "[arange] invalid size ", size_d, " for start=", start.to_double(), ", end=",
             end.to_double(), ", step=", step.to_double());
  Tensor out = empty({static_cast<int64_t>(size_d)}, out_dtype, device);
  static const dispatch::Op<void(const Tensor&, Scalar, Scalar)> k("arange");
  k(device, out, start, step);
  return out;
}

Tensor linspace(Scalar start, Scalar end, int64_t steps, std::optional<ScalarType> dtype,
                Device device) {
  KILN_CHECK(steps >= 0, ValueError, "[linspace] number of steps must be non-negative, got ",
             steps);
  const ScalarType out_dtype = dtype ? *dtype : default_float_dtype();
  Tensor out = empty({steps}, out_dtype, device);
  static const dispatch::Op<void(const Tensor&, Scalar, Scalar)> k("linspace");
  k(device, out, start, end);
  return out;
}

Tensor eye(int64_t n, std::optional<int64_t> m, std::optional<ScalarType> dtype, Device device) {
  const int64_t cols = m ? *m : n;
  KILN_CHECK(n >= 0, ValueError, "[eye] n must be greater or equal to 0, got ", n);
  KILN_CHECK(cols >= 0, ValueError, "[eye] m must be greater or equal to 0, got ", cols);
  Tensor out = zeros({n, cols}, dtype ? *dtype : default_float_dtype(), device);
  // The diagonal is a strided view with stride cols + 1.
  Tensor diag = as_strided(out, {std::min(n, cols)}, {cols + 1}, 0);
  fill_(diag, 1);
  return out;
}

}  // namespace kiln
