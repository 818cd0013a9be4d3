#pragma once
#include <cstdint>
#include <ostream>
#include <string>

#include "kiln/macros.h"

namespace kiln {

enum class DeviceType : int8_t { CPU = 0, CUDA = 1 };
constexpr int kNumDeviceTypes = 2;

struct KILN_API Device {
  DeviceType type = DeviceType::CPU;
  int8_t index = 0;

  Device() = default;
  Device(DeviceType t, int idx = 0) : type(t), index(static_cast<int8_t>(idx)) {}  // NOLINT
  // Parses "cpu", "cuda", "cuda:1"; throws ValueError otherwise.
  static Device parse(const std::string& spec);

  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const;
};

inline std::ostream& operator<<(std::ostream& os, const Device& d) { return os << d.str(); }

}  // namespace kiln
