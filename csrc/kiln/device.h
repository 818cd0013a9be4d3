#pragma once
#include <cstdint>
#include <ostream>
#include <string>

#include "kiln/macros.h"

namespace kiln {

enum class DeviceType : int8_t { CPU = 0, CUDA = 1 };
constexpr int kNumDeviceTypes = 2;

// Note [Device index]: as in PyTorch, "cuda" names the current CUDA device
// without fixing an index (index -1) and differs from "cuda:0". Memory always
// lives on a concrete device: Storage::allocate resolves the index, so
// Tensor::device() always has one. CPU devices have no index.
struct KILN_API Device {
  DeviceType type = DeviceType::CPU;
  int8_t index = -1;

  Device() = default;
  Device(DeviceType t, int idx = -1)  // NOLINT
      : type(t), index(static_cast<int8_t>(t == DeviceType::CPU ? -1 : idx)) {}
  // Parses "cpu", "cuda", "cuda:1"; throws ValueError otherwise.
  static Device parse(const std::string& spec);

  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  bool has_index() const { return index >= 0; }
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const;
};

inline std::ostream& operator<<(std::ostream& os, const Device& d) { return os << d.str(); }

// A backend registers how to read its current device (e.g. cudaGetDevice)
// when it loads; `resolve_device` fills in a missing index from it (0 when
// the backend isn't loaded).
using CurrentDeviceFn = int (*)();
KILN_API void register_current_device_fn(DeviceType type, CurrentDeviceFn fn);
KILN_API Device resolve_device(Device device);

}  // namespace kiln
