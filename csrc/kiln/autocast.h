#pragma once
#include <atomic>
#include <cstdint>
#include <optional>
#include <type_traits>

#include "kiln/device.h"
#include "kiln/dtype.h"
#include "kiln/error.h"
#include "kiln/macros.h"
#include "kiln/tensor.h"

namespace kiln::autocast {

// Note [Autocast]: automatic mixed precision, as torch.autocast. The state is
// thread-local and per device type: enabled flag and the lower-precision dtype.
// An op in PyTorch's cast lists starts with KILN_AUTOCAST(policy, op, args...);
// when autocast is on for the device of the op's first tensor argument, the op
// is re-entered with its floating inputs cast as the policy says and autocast
// suspended, so the ops it is built from run as called (PyTorch excludes the
// autocast key the same way). With autocast off in every thread an op pays one
// global load; once some thread enables it, one thread-local test. In-place ops
// are never cast (as in PyTorch). The autograd engine suspends autocast while it
// runs backward formulas; a cast's own backward casts the gradient back, so
// float32 leaves get float32 grads.

enum class Policy : uint8_t {
  None,             // runs as called
  LowerPrecision,   // floating inputs (float64 excepted) to the autocast dtype
  Float32,          // floating inputs (float64 excepted) to float32
  Float32OptDtype,  // unset dtype= argument becomes float32 when the first input is eligible
  Promote,          // floating inputs to the widest floating input type
  Keep,             // no casts, but the ops it is built from run as called
};

// An op's policy on each device type; the lists differ between CPU and CUDA.
struct OpPolicy {
  Policy cpu, cuda;
};
inline constexpr OpPolicy kLowerPrecision{Policy::LowerPrecision, Policy::LowerPrecision};
inline constexpr OpPolicy kFloat32{Policy::Float32, Policy::Float32};
inline constexpr OpPolicy kFloat32Cuda{Policy::None, Policy::Float32};
inline constexpr OpPolicy kLowerPrecisionCuda{Policy::None, Policy::LowerPrecision};
inline constexpr OpPolicy kFloat32OptDtypeCuda{Policy::None, Policy::Float32OptDtype};
inline constexpr OpPolicy kFloat32CpuOptDtypeCuda{Policy::Float32, Policy::Float32OptDtype};
inline constexpr OpPolicy kPromoteCpu{Policy::Promote, Policy::None};
inline constexpr OpPolicy kPromoteCuda{Policy::None, Policy::Promote};
// Built from listed ops in kiln, a single unlisted kernel in PyTorch.
inline constexpr OpPolicy kKeepCuda{Policy::None, Policy::Keep};

KILN_API bool is_enabled(DeviceType device);
KILN_API void set_enabled(DeviceType device, bool enabled);
// The lower-precision dtype: float16 for CUDA, bfloat16 for CPU until set.
KILN_API ScalarType get_dtype(DeviceType device);
KILN_API void set_dtype(DeviceType device, ScalarType dtype);
KILN_API bool is_cache_enabled();
KILN_API void set_cache_enabled(bool enabled);
// Depth of nested autocast regions; leaving the outermost one clears the cache.
KILN_API int64_t increment_nesting();
KILN_API int64_t decrement_nesting();
KILN_API void clear_cache();

namespace detail {
// Threads that have autocast enabled for some device type: while none has, the
// ops' test is one load of this global, not a thread-local lookup.
KILN_API extern std::atomic<int> g_enabled_threads;
// True while autocast is enabled for some device type and not suspended.
// constinit: read directly, without a call to a thread-local init wrapper.
KILN_API extern constinit thread_local bool t_active;
}  // namespace detail
inline bool is_active() {
  return detail::g_enabled_threads.load(std::memory_order_relaxed) != 0 && detail::t_active;
}

// While alive, no op autocasts: the inside of a cast op, backward formulas.
class KILN_API SuspendGuard {
 public:
  SuspendGuard();
  ~SuspendGuard();
  SuspendGuard(const SuspendGuard&) = delete;
  SuspendGuard& operator=(const SuspendGuard&) = delete;

 private:
  bool prev_;
};
KILN_API bool is_suspended();
KILN_API void set_suspended(bool suspended);

// `t` cast to `dtype` when it is eligible (floating, not float64, on `device`,
// not a wrapped Python number); lower-precision copies of float32 leaves that
// require grad are cached until the outermost autocast region ends.
KILN_API Tensor cast(const Tensor& t, ScalarType dtype, DeviceType device);

// The decision for one call: which policy applies, and the dtype it casts to.
struct Plan {
  Policy policy = Policy::None;
  DeviceType device = DeviceType::CPU;
  ScalarType dtype = ScalarType::Float32;
};

namespace detail {
KILN_API Plan plan_for(OpPolicy policy, const Tensor* first);
// Folds one input into the promote policy's dtype (PyTorch's rules).
KILN_API ScalarType promote(ScalarType current, const Tensor& t, const Plan& plan);
KILN_API bool is_eligible(const Tensor& t, DeviceType device);

template <class A>
const Tensor* first_tensor(const A& a) {
  if constexpr (std::is_same_v<A, Tensor>) {
    return a.defined() && !a.impl()->is_wrapped_number ? &a : nullptr;
  } else if constexpr (std::is_same_v<A, TensorList>) {
    for (const Tensor& t : a)
      if (const Tensor* f = first_tensor(t)) return f;
  }
  return nullptr;
}

template <class A>
decltype(auto) cast_arg(const A& a, const Plan& plan, bool first_eligible) {
  if constexpr (std::is_same_v<A, Tensor>) {
    return plan.policy == Policy::Float32OptDtype || plan.policy == Policy::Keep
               ? a
               : cast(a, plan.dtype, plan.device);
  } else if constexpr (std::is_same_v<A, TensorList>) {
    TensorList out;
    out.reserve(a.size());
    for (const Tensor& t : a) out.push_back(cast_arg(t, plan, first_eligible));
    return out;
  } else if constexpr (std::is_same_v<A, std::optional<ScalarType>>) {
    return plan.policy == Policy::Float32OptDtype && first_eligible && !a.has_value()
               ? std::optional<ScalarType>(ScalarType::Float32)
               : a;
  } else {
    return (a);
  }
}

template <class A>
void fold_promote(ScalarType& current, const A& a, const Plan& plan) {
  if constexpr (std::is_same_v<A, Tensor>) {
    current = promote(current, a, plan);
  } else if constexpr (std::is_same_v<A, TensorList>) {
    for (const Tensor& t : a) current = promote(current, t, plan);
  }
}
}  // namespace detail

// The policy that applies to a call with these arguments (None: run as called).
template <class... Args>
Plan plan(OpPolicy policy, const Args&... args) {
  const Tensor* first = nullptr;
  ((first = first ? first : detail::first_tensor(args)), ...);
  return detail::plan_for(policy, first);
}

// Calls `op` with the arguments cast as `p` says, autocast suspended.
template <class Op, class First, class... Rest>
auto run(Plan p, const Op& op, const First& first, const Rest&... rest) {
  if (p.policy == Policy::Promote) {
    ScalarType widest = p.dtype;
    detail::fold_promote(widest, first, p);
    (detail::fold_promote(widest, rest, p), ...);
    p.dtype = widest;
  }
  bool first_eligible = false;  // PyTorch looks at the first argument only
  if constexpr (std::is_same_v<First, Tensor>)
    first_eligible = detail::is_eligible(first, p.device);
  SuspendGuard suspend;
  return op(detail::cast_arg(first, p, first_eligible),
            detail::cast_arg(rest, p, first_eligible)...);
}

}  // namespace kiln::autocast

// First line of an op in PyTorch's autocast lists: KILN_AUTOCAST(kFloat32, exp, a);
// `op_policy` names an OpPolicy in kiln::autocast; the arguments are the op's own.
#define KILN_AUTOCAST(op_policy, op, ...)                                     \
  if (::kiln::autocast::is_active()) [[unlikely]]                             \
    if (const ::kiln::autocast::Plan kiln_autocast_plan_ =                    \
            ::kiln::autocast::plan(::kiln::autocast::op_policy, __VA_ARGS__); \
        kiln_autocast_plan_.policy != ::kiln::autocast::Policy::None)         \
  return ::kiln::autocast::run(                                               \
      kiln_autocast_plan_,                                                    \
      [](const auto&... kiln_autocast_args_) { return op(kiln_autocast_args_...); }, __VA_ARGS__)
