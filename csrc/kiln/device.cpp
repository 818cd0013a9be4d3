#include "kiln/device.h"

#include <atomic>

#include "kiln/error.h"

namespace kiln {
namespace {
std::atomic<CurrentDeviceFn> g_current_device[kNumDeviceTypes] = {};
}  // namespace

Device Device::parse(const std::string& spec) {
  if (spec == "cpu") return Device(DeviceType::CPU);
  if (spec.rfind("cuda", 0) == 0) {
    if (spec.size() == 4) return Device(DeviceType::CUDA);
    if (spec[4] == ':' && spec.size() > 5 && spec.size() <= 8) {
      int idx = 0;
      for (size_t i = 5; i < spec.size(); ++i) {
        KILN_CHECK(spec[i] >= '0' && spec[i] <= '9', ValueError, "[device] invalid device string '",
                   spec, "'");
        idx = idx * 10 + (spec[i] - '0');
      }
      KILN_CHECK(idx < 128, ValueError, "[device] device index out of range in '", spec, "'");
      return Device(DeviceType::CUDA, idx);
    }
  }
  if (spec.rfind("cpu:", 0) == 0 && spec.size() > 4) return Device(DeviceType::CPU);
  throw ValueError("[device] expected 'cpu', 'cuda' or 'cuda:N', got '" + spec + "'");
}

std::string Device::str() const {
  if (type == DeviceType::CPU) return "cpu";
  return has_index() ? "cuda:" + std::to_string(index) : "cuda";
}

void register_current_device_fn(DeviceType type, CurrentDeviceFn fn) {
  g_current_device[static_cast<int>(type)].store(fn);
}

Device resolve_device(Device device) {
  if (device.is_cpu() || device.has_index()) return device;
  CurrentDeviceFn fn = g_current_device[static_cast<int>(device.type)].load();
  return Device(device.type, fn ? fn() : 0);
}

}  // namespace kiln
