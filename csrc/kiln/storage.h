#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "kiln/device.h"
#include "kiln/macros.h"

namespace kiln {

// Allocates raw bytes on one device type. CPU registers itself; the CUDA
// module registers its stream-ordered allocator when it loads.
class KILN_API Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t nbytes, Device device) = 0;
  virtual void deallocate(void* ptr, Device device) = 0;
};
KILN_API void register_allocator(DeviceType type, Allocator* allocator);
KILN_API Allocator* get_allocator(DeviceType type);
// Why a backend's allocator is missing (e.g. "kiln._C_cuda was not built"),
// set by the Python package when loading the backend fails; the error raised
// on allocating there quotes it.
KILN_API void set_unavailable_reason(DeviceType type, const std::string& why);

// A ref-counted byte buffer on one device. Memory either comes from the
// device's allocator or is borrowed (NumPy, DLPack) and released through
// `release(context)` when the last tensor using it dies.
class KILN_API Storage {
 public:
  using ReleaseFn = void (*)(void* context);

  static std::shared_ptr<Storage> allocate(size_t nbytes, Device device);
  static std::shared_ptr<Storage> borrow(void* data, size_t nbytes, Device device,
                                         ReleaseFn release, void* context);

  Storage(void* data, size_t nbytes, Device device, ReleaseFn release, void* context,
          bool owned);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

  // Note [Version counter]: in-place writes bump the version of the storage
  // they write to, so every view of that memory sees the change; autograd
  // compares it with the version recorded when a tensor was saved.
  uint32_t version() const { return version_.load(std::memory_order_relaxed); }
  void bump_version() { version_.fetch_add(1, std::memory_order_relaxed); }

 private:
  void* data_;
  size_t nbytes_;
  Device device_;
  ReleaseFn release_;
  void* context_;
  bool owned_;
  std::atomic<uint32_t> version_{0};
};

}  // namespace kiln
