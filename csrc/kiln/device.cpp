#include "kiln/device.h"

#include "kiln/error.h"

namespace kiln {

Device Device::parse(const std::string& spec) {
  if (spec == "cpu") return Device(DeviceType::CPU);
  if (spec.rfind("cuda", 0) == 0) {
    if (spec.size() == 4) return Device(DeviceType::CUDA, 0);
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
  return "cuda:" + std::to_string(index);
}

}  // namespace kiln
