#include "kiln/ops/random.h"

#include <cmath>
#include <string>

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

// Kernels write a contiguous output; element i uses Philox block i (Note [Random stream layout]).
using RealKernel = void(const Tensor&, PhiloxSeed, double, double);
using IntKernel = void(const Tensor&, PhiloxSeed, int64_t, uint64_t);

// Fills `self` in place with `fill(out, seed)`, through a contiguous temporary when
// self isn't contiguous, so values never depend on the memory layout.
template <class F>
Tensor& fill_random_(Tensor& self, const char* op, const char* backward_name,
                     const GeneratorPtr& gen, const F& fill) {
  check_inplace(self, op);
  const PhiloxSeed seed = resolve_generator(gen, self.device(), op).next();
  if (self.is_contiguous()) {
    fill(self, seed);
  } else {
    Tensor tmp = empty(self.sizes(), self.dtype(), self.device());
    fill(tmp, seed);
    static const dispatch::Op<void(const Tensor&, const Tensor&)> copy_kernel("copy");
    copy_kernel(self.device(), self, tmp);
  }
  self.bump_version();
  if (self.requires_grad() && autograd::is_grad_enabled()) {
    // The sample doesn't depend on the old value: no gradient flows to it.
    autograd::record(backward_name, {self}, {self}, {},
                     [](const BackwardArgs& a) { return TensorList{zeros_like(a.grad())}; });
  }
  return self;
}

void check_floating(ScalarType dtype, const char* op) {
  KILN_CHECK(is_floating(dtype), TypeError, "[", op, "] expected a floating point dtype, got ",
             dtype);
}

// random_'s default (exclusive) upper bound: one past the dtype's largest value for
// integral types, 2^mantissa + 1 for floats (every integer up to 2^mantissa is exact).
// Unsigned so int64's 2^63 fits.
uint64_t dtype_int_limit(ScalarType dtype) {
  switch (dtype) {
    case ScalarType::Bool: return 2;
    case ScalarType::UInt8: return uint64_t(1) << 8;
    case ScalarType::Int8: return uint64_t(1) << 7;
    case ScalarType::Int16: return uint64_t(1) << 15;
    case ScalarType::Int32: return uint64_t(1) << 31;
    case ScalarType::Int64: return uint64_t(1) << 63;
    case ScalarType::Float16: return (uint64_t(1) << 11) + 1;
    case ScalarType::BFloat16: return (uint64_t(1) << 8) + 1;
    case ScalarType::Float32: return (uint64_t(1) << 24) + 1;
    case ScalarType::Float64: return (uint64_t(1) << 53) + 1;
  }
  return 0;
}

// The smallest value of an integral dtype (0 for bool/uint8/floats, whose range check is skipped).
int64_t dtype_int_min(ScalarType dtype) {
  if (!is_signed(dtype) || is_floating(dtype)) return 0;
  return -static_cast<int64_t>(dtype_int_limit(dtype) - 1) - 1;
}

}  // namespace

Tensor& uniform_(Tensor& self, double from, double to, const GeneratorPtr& gen) {
  check_floating(self.dtype(), "uniform_");
  KILN_CHECK(from <= to, ValueError,
             "[uniform_] expects a [from, to) range with from <= to, got from=", from,
             " > to=", to);
  KILN_CHECK(std::isfinite(to - from), ValueError, "[uniform_] from and to must be finite with a "
             "finite difference, got from=", from, ", to=", to);
  static const dispatch::Op<RealKernel> k("uniform_");
  return fill_random_(self, "uniform_", "UniformBackward0", gen,
                      [&](const Tensor& out, PhiloxSeed s) { k(out.device(), out, s, from, to); });
}

Tensor& normal_(Tensor& self, double mean, double std, const GeneratorPtr& gen) {
  check_floating(self.dtype(), "normal_");
  KILN_CHECK(std >= 0, ValueError, "[normal_] expects std >= 0.0, got std=", std);
  static const dispatch::Op<RealKernel> k("normal_");
  return fill_random_(self, "normal_", "NormalBackward0", gen,
                      [&](const Tensor& out, PhiloxSeed s) { k(out.device(), out, s, mean, std); });
}

Tensor& random_(Tensor& self, int64_t from, std::optional<int64_t> to, const GeneratorPtr& gen) {
  const ScalarType dt = self.dtype();
  const uint64_t limit = dtype_int_limit(dt);
  // In 128 bits so that int64's one-past-the-largest value (2^63) fits.
  const __int128 end = to ? static_cast<__int128>(*to) : static_cast<__int128>(limit);
  const std::string end_str = to ? std::to_string(*to) : std::to_string(limit);
  KILN_CHECK(from < end, ValueError, "[random_] expects 'from' to be less than 'to', got from=",
             from, " >= to=", end_str);
  if (is_integral(dt, /*include_bool=*/true))
    KILN_CHECK(from >= dtype_int_min(dt) && end <= static_cast<__int128>(limit), ValueError,
               "[random_] range [", from, ", ", end_str, ") is out of bounds for ", dt);
  const uint64_t range = static_cast<uint64_t>(end - from);
  static const dispatch::Op<IntKernel> k("random_");
  return fill_random_(self, "random_", "RandomBackward0", gen,
                      [&](const Tensor& out, PhiloxSeed s) {
                        k(out.device(), out, s, from, range);
                      });
}

Tensor& bernoulli_(Tensor& self, double p, const GeneratorPtr& gen) {
  KILN_CHECK(p >= 0 && p <= 1, ValueError, "[bernoulli_] expects p to be in [0, 1], got p=", p);
  static const dispatch::Op<void(const Tensor&, PhiloxSeed, double)> k("bernoulli_scalar");
  return fill_random_(self, "bernoulli_", "BernoulliBackward0", gen,
                      [&](const Tensor& out, PhiloxSeed s) { k(out.device(), out, s, p); });
}

Tensor& bernoulli_(Tensor& self, const Tensor& p, const GeneratorPtr& gen) {
  KILN_CHECK(p.device() == self.device(), Error, "[bernoulli_] expected p on ", self.device(),
             ", got ", p.device());
  KILN_CHECK(is_expandable_to(p.sizes(), self.sizes()), ValueError, "[bernoulli_] p of shape ",
             p.sizes(), " cannot be broadcast to ", self.sizes());
  // The kernel reads probabilities as contiguous float64 of self's shape.
  Tensor probs = contiguous(to_dtype(expand(detach(p), self.sizes()), ScalarType::Float64));
  static const dispatch::Op<void(const Tensor&, PhiloxSeed, const Tensor&)> k("bernoulli_tensor");
  return fill_random_(self, "bernoulli_", "BernoulliBackward1", gen,
                      [&](const Tensor& out, PhiloxSeed s) { k(out.device(), out, s, probs); });
}

Tensor bernoulli(const Tensor& p, const GeneratorPtr& gen) {
  check_floating(p.dtype(), "bernoulli");
  Tensor out = empty(p.sizes(), p.dtype(), p.device());
  autograd::NoGradGuard no_grad;
  return bernoulli_(out, p, gen);
}

Tensor rand(const Shape& shape, ScalarType dtype, Device device, const GeneratorPtr& gen) {
  check_floating(dtype, "rand");
  Tensor out = empty(shape, dtype, device);
  autograd::NoGradGuard no_grad;
  return uniform_(out, 0, 1, gen);
}

Tensor randn(const Shape& shape, ScalarType dtype, Device device, const GeneratorPtr& gen) {
  check_floating(dtype, "randn");
  Tensor out = empty(shape, dtype, device);
  autograd::NoGradGuard no_grad;
  return normal_(out, 0, 1, gen);
}

Tensor randint(int64_t low, int64_t high, const Shape& shape, ScalarType dtype, Device device,
               const GeneratorPtr& gen) {
  KILN_CHECK(low < high, ValueError, "[randint] expected low < high, got low=", low,
             ", high=", high);
  Tensor out = empty(shape, dtype, device);
  autograd::NoGradGuard no_grad;
  return random_(out, low, high, gen);
}

Tensor randperm(int64_t n, ScalarType dtype, Device device, const GeneratorPtr& gen) {
  KILN_CHECK(n >= 0, ValueError, "[randperm] n must be non-negative, got ", n);
  KILN_CHECK(dtype != ScalarType::Bool && static_cast<uint64_t>(n) <= dtype_int_limit(dtype),
             ValueError, "[randperm] n=", n, " is too large for ", dtype);
  Tensor out = empty({n}, dtype, device);
  const PhiloxSeed seed = resolve_generator(gen, device, "randperm").next();
  static const dispatch::Op<void(const Tensor&, PhiloxSeed)> k("randperm");
  k(device, out, seed);
  return out;
}

Tensor multinomial(const Tensor& probs, int64_t num_samples, bool replacement,
                   const GeneratorPtr& gen) {
  check_floating(probs.dtype(), "multinomial");
  KILN_CHECK(probs.dim() == 1 || probs.dim() == 2, ValueError,
             "[multinomial] prob_dist must be 1 or 2 dim, got shape ", probs.sizes());
  const int64_t categories = probs.size(-1);
  KILN_CHECK(categories > 0, ValueError, "[multinomial] prob_dist has no categories");
  KILN_CHECK(num_samples > 0, ValueError, "[multinomial] num_samples must be positive, got ",
             num_samples);
  KILN_CHECK(replacement || num_samples <= categories, ValueError,
             "[multinomial] cannot sample n_sample=", num_samples, " > prob_dist.size(-1)=",
             categories, " samples without replacement");
  const int64_t rows = probs.dim() == 2 ? probs.size(0) : 1;
  Tensor p = contiguous(to_dtype(detach(probs), ScalarType::Float64));
  Tensor out = empty({rows, num_samples}, ScalarType::Int64, probs.device());
  const PhiloxSeed seed = resolve_generator(gen, probs.device(), "multinomial").next();
  static const dispatch::Op<void(const Tensor&, const Tensor&, PhiloxSeed, bool)> k("multinomial");
  k(probs.device(), out, reshape(p, {rows, categories}), seed, replacement);
  return probs.dim() == 1 ? view(out, {num_samples}) : out;
}

}  // namespace kiln
