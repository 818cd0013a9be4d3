#include "kiln/autocast.h"

#include <memory>
#include <unordered_map>
#include <utility>

#include "kiln/autograd/grad_mode.h"
#include "kiln/ops/copy.h"

namespace kiln::autocast {

namespace detail {
std::atomic<int> g_enabled_threads{0};
constinit thread_local bool t_active = false;
}  // namespace detail

namespace {

struct State {
  bool enabled[kNumDeviceTypes] = {false, false};
  ScalarType dtype[kNumDeviceTypes] = {ScalarType::BFloat16, ScalarType::Float16};
  bool cache_enabled = true;
  bool suspended = false;
  bool counted = false;  // this thread is in g_enabled_threads
  int64_t nesting = 0;
};
thread_local State t_state;

// Note [Autocast cache]: keyed by the source's TensorImpl address; the weak
// pointer tells a live entry from one whose source died (its address may be reused).
struct CacheEntry {
  std::weak_ptr<TensorImpl> source;
  Tensor cast;
};
thread_local std::unordered_map<const TensorImpl*, CacheEntry> t_cache;

void refresh_active() {
  bool any = false;
  for (bool e : t_state.enabled) any = any || e;
  if (any != t_state.counted) {
    detail::g_enabled_threads.fetch_add(any ? 1 : -1, std::memory_order_relaxed);
    t_state.counted = any;
  }
  detail::t_active = any && !t_state.suspended;
}

int index(DeviceType device) { return static_cast<int>(device); }

}  // namespace

bool is_enabled(DeviceType device) { return t_state.enabled[index(device)]; }

void set_enabled(DeviceType device, bool enabled) {
  t_state.enabled[index(device)] = enabled;
  refresh_active();
}

ScalarType get_dtype(DeviceType device) { return t_state.dtype[index(device)]; }

void set_dtype(DeviceType device, ScalarType dtype) {
  KILN_CHECK(is_floating(dtype), TypeError, "[autocast] dtype must be a floating dtype, got ",
             dtype);
  t_state.dtype[index(device)] = dtype;
}

bool is_cache_enabled() { return t_state.cache_enabled; }
void set_cache_enabled(bool enabled) { t_state.cache_enabled = enabled; }
int64_t increment_nesting() { return ++t_state.nesting; }
int64_t decrement_nesting() { return --t_state.nesting; }
void clear_cache() { t_cache.clear(); }

bool is_suspended() { return t_state.suspended; }
void set_suspended(bool suspended) {
  t_state.suspended = suspended;
  refresh_active();
}

SuspendGuard::SuspendGuard() : prev_(t_state.suspended) { set_suspended(true); }
SuspendGuard::~SuspendGuard() { set_suspended(prev_); }

namespace detail {

bool is_eligible(const Tensor& t, DeviceType device) {
  return t.defined() && !t.impl()->is_wrapped_number && t.is_floating_point() &&
         t.dtype() != ScalarType::Float64 && t.device().type == device;
}

Plan plan_for(OpPolicy policy, const Tensor* first) {
  if (!first) return Plan{};
  const DeviceType device = first->device().type;
  if (!is_enabled(device)) return Plan{};
  const Policy p = device == DeviceType::CUDA ? policy.cuda : policy.cpu;
  switch (p) {
    case Policy::Float32:
    case Policy::Float32OptDtype:
      return Plan{p, device, ScalarType::Float32};
    default:
      return Plan{p, device, get_dtype(device)};
  }
}

ScalarType promote(ScalarType current, const Tensor& t, const Plan& plan) {
  if (!is_eligible(t, plan.device)) return current;
  const ScalarType next = t.dtype();
  if (current == ScalarType::Float32 || next == ScalarType::Float32) return ScalarType::Float32;
  KILN_CHECK(current == next, TypeError, "[autocast] cannot promote ", current, " and ", next,
             " inputs under autocast with dtype ", plan.dtype);
  return current;
}

}  // namespace detail

Tensor cast(const Tensor& t, ScalarType dtype, DeviceType device) {
  if (!detail::is_eligible(t, device) || t.dtype() == dtype) return t;
  // Only lower-precision copies of float32 weights are worth keeping (Note [Autocast cache]).
  const bool cacheable = t_state.cache_enabled && dtype == get_dtype(device) &&
                         t.dtype() == ScalarType::Float32 && t.requires_grad() && t.is_leaf() &&
                         !t.impl()->view_base && autograd::is_grad_enabled();
  if (!cacheable) return to_dtype(t, dtype);
  auto it = t_cache.find(t.impl());
  if (it != t_cache.end() && !it->second.source.expired() && it->second.cast.dtype() == dtype)
    return it->second.cast;
  Tensor out = to_dtype(t, dtype);
  t_cache[t.impl()] = CacheEntry{t.impl_ptr(), out};
  return out;
}

}  // namespace kiln::autocast
