#pragma once
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "kiln/device.h"
#include "kiln/macros.h"
#include "kiln/tensor.h"

namespace kiln::dispatch {

// The (op name, device type) -> kernel table. Every op reaches its kernel
// through here: CPU kernels register from csrc/kiln/cpu, CUDA kernels from
// cuda/, extension kernels from user code, all with KILN_REGISTER_KERNEL.
struct KILN_API OpEntry {
  std::string name;
  std::string signature;  // mangled kernel type, checked on register and lookup
  void* kernels[kNumDeviceTypes] = {};
};

// Finds or creates the entry for `name`; the address stays valid forever.
KILN_API OpEntry& op_entry(const char* name);
KILN_API void register_kernel(const char* name, DeviceType device, void* fn,
                              const char* signature);
KILN_API bool has_kernel(const char* name, DeviceType device);
// Names of the ops with a kernel for `device`, sorted.
KILN_API std::vector<std::string> ops_with_kernel(DeviceType device);
[[noreturn]] KILN_API void throw_no_kernel(const OpEntry& entry, Device device);
KILN_API void check_signature(OpEntry& entry, const char* signature);
[[noreturn]] KILN_API void throw_device_mismatch(const OpEntry& entry, Device want, Device got);

// Note [Kernel devices]: every Tensor argument of a kernel must live on the
// device the kernel runs on (a CUDA kernel must never see a host pointer, nor
// a CPU kernel a device pointer). Front ends check this with the op's own
// message; this is the central check that no op can forget. Python numbers
// wrapped as tensors are exempt, and `Op::across_devices` (copies) skips it.
namespace detail {
inline void check_device(const OpEntry& entry, Device want, const Tensor& t) {
  if (!t.defined() || t.impl()->is_wrapped_number) return;
  const Device got = t.device();
  if (got.type != want.type || (want.has_index() && got.index != want.index)) [[unlikely]]
    throw_device_mismatch(entry, want, got);
}
template <class A>
inline void check_arg_device(const OpEntry& entry, Device want, const A& arg) {
  if constexpr (std::is_same_v<A, Tensor>) {
    check_device(entry, want, arg);
  } else if constexpr (std::is_same_v<A, TensorList>) {
    for (const Tensor& t : arg) check_device(entry, want, t);
  }
}
}  // namespace detail

// A typed handle to one op's kernels; create once (function-local static) and call.
template <class Sig>
class Op;
template <class R, class... Args>
class Op<R(Args...)> {
 public:
  using Fn = R (*)(Args...);
  explicit Op(const char* name) : entry_(&op_entry(name)) {
    check_signature(*entry_, typeid(Fn).name());
  }
  R operator()(Device device, Args... args) const {
    (detail::check_arg_device(*entry_, device, std::as_const(args)), ...);
    return across_devices(device, std::forward<Args>(args)...);
  }
  // Without the device check: for kernels that move data between devices.
  R across_devices(Device device, Args... args) const {
    void* k = entry_->kernels[static_cast<int>(device.type)];
    if (!k) [[unlikely]] throw_no_kernel(*entry_, device);
    return reinterpret_cast<Fn>(k)(std::forward<Args>(args)...);
  }
  const std::string& name() const { return entry_->name; }

 private:
  OpEntry* entry_;
};

}  // namespace kiln::dispatch

#define KILN_DISPATCH_CONCAT_(a, b) a##b
#define KILN_DISPATCH_CONCAT(a, b) KILN_DISPATCH_CONCAT_(a, b)
// KILN_REGISTER_KERNEL(add, CPU, add_kernel): registers a kernel at load time.
// Registration is host code: nvcc's device pass skips it (its device
// compiler crashes on typeid in a namespace-scope initializer). It must still
// name fn: when fn is a function template, naming it is what makes the device
// pass instantiate it and so compile the kernels it launches; without that they
// have a host stub and no device code ("invalid device function" at launch).
#if defined(__CUDA_ARCH__)
#define KILN_REGISTER_KERNEL(op, device, fn) \
  [[maybe_unused]] static const auto KILN_DISPATCH_CONCAT(kiln_kernel_named_, __COUNTER__) = +(fn)
#else
#define KILN_REGISTER_KERNEL(op, device, fn)                                           \
  static const bool KILN_DISPATCH_CONCAT(kiln_kernel_registered_, __COUNTER__) =       \
      (::kiln::dispatch::register_kernel(#op, ::kiln::DeviceType::device,              \
                                         reinterpret_cast<void*>(+(fn)),               \
                                         typeid(decltype(+(fn))).name()),              \
       true)
#endif
