#pragma once
#include <string>
#include <typeinfo>
#include <utility>

#include "kiln/device.h"
#include "kiln/macros.h"

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
[[noreturn]] KILN_API void throw_no_kernel(const OpEntry& entry, Device device);
KILN_API void check_signature(OpEntry& entry, const char* signature);

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
#define KILN_REGISTER_KERNEL(op, device, fn)                                           \
  static const bool KILN_DISPATCH_CONCAT(kiln_kernel_registered_, __COUNTER__) =       \
      (::kiln::dispatch::register_kernel(#op, ::kiln::DeviceType::device,              \
                                         reinterpret_cast<void*>(+(fn)),               \
                                         typeid(decltype(+(fn))).name()),              \
       true)
