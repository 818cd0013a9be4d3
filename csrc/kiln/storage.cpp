#include "kiln/storage.h"

#include <cstdlib>
#include <new>

#include "kiln/error.h"

namespace kiln {
namespace {

// 64-byte alignment lets vectorized loops use aligned loads on fresh buffers.
class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes, Device) override {
    if (nbytes == 0) return nullptr;
    const size_t rounded = (nbytes + 63) & ~size_t(63);
    void* p = std::aligned_alloc(64, rounded);
    KILN_CHECK(p != nullptr, Error, "[allocator] out of memory allocating ", nbytes,
               " bytes on cpu");
    return p;
  }
  void deallocate(void* ptr, Device) override { std::free(ptr); }
};

CpuAllocator g_cpu_allocator;
Allocator* g_allocators[kNumDeviceTypes] = {&g_cpu_allocator, nullptr};
std::string g_unavailable_reason[kNumDeviceTypes];

}  // namespace

void register_allocator(DeviceType type, Allocator* allocator) {
  g_allocators[static_cast<int>(type)] = allocator;
}

void set_unavailable_reason(DeviceType type, const std::string& why) {
  g_unavailable_reason[static_cast<int>(type)] = why;
}

Allocator* get_allocator(DeviceType type) {
  const int t = static_cast<int>(type);
  Allocator* a = g_allocators[t];
  if (!a) [[unlikely]] {
    const std::string name = type == DeviceType::CUDA ? "CUDA" : Device(type).str();
    throw Error("[allocator] can't allocate memory on " + Device(type).str() + ": " + name +
                " is not available (" +
                (g_unavailable_reason[t].empty() ? "its backend module is not loaded"
                                                 : g_unavailable_reason[t]) +
                ")");
  }
  return a;
}

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, Device device) {
  device = resolve_device(device);
  void* p = get_allocator(device.type)->allocate(nbytes, device);
  return std::make_shared<Storage>(p, nbytes, device, nullptr, nullptr, true);
}

std::shared_ptr<Storage> Storage::borrow(void* data, size_t nbytes, Device device,
                                         ReleaseFn release, void* context) {
  return std::make_shared<Storage>(data, nbytes, device, release, context, false);
}

Storage::Storage(void* data, size_t nbytes, Device device, ReleaseFn release, void* context,
                 bool owned)
    : data_(data),
      nbytes_(nbytes),
      device_(device),
      release_(release),
      context_(context),
      owned_(owned) {}

Storage::~Storage() {
  if (owned_) {
    if (data_) get_allocator(device_.type)->deallocate(data_, device_);
  } else if (release_) {
    release_(context_);
  }
}

}  // namespace kiln
