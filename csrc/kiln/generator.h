#pragma once
#include <cstdint>
#include <memory>
#include <mutex>

#include "kiln/device.h"
#include "kiln/macros.h"
#include "kiln/philox.h"
#include "kiln/tensor.h"

namespace kiln {

// A source of random numbers for one device: a Philox seed plus the offset
// of the next unused stream (see Note [Random stream layout] in philox.h).
// Thread-safe: concurrent ops each reserve their own offset.
class KILN_API Generator {
 public:
  static constexpr uint64_t kDefaultSeed = 67280421310721ULL;  // PyTorch's default
  static constexpr size_t kStateBytes = 16;  // seed, offset (little-endian uint64 each)

  explicit Generator(Device device = Device(), uint64_t seed = kDefaultSeed);

  Device device() const { return device_; }
  void manual_seed(uint64_t seed);  // restarts the stream
  uint64_t seed();                  // seeds from a nondeterministic source; returns the seed
  uint64_t initial_seed() const;
  // The seed and a fresh offset for one op; advances the generator.
  PhiloxSeed next();

  // The state as a uint8 CPU tensor of kStateBytes bytes, as torch.Generator.get_state.
  Tensor get_state() const;
  void set_state(const Tensor& state);

 private:
  Device device_;
  mutable std::mutex mutex_;
  uint64_t seed_;
  uint64_t offset_ = 0;
};

using GeneratorPtr = std::shared_ptr<Generator>;

// The process-wide generator of a device (kiln.default_generator for CPU).
KILN_API const GeneratorPtr& default_generator(Device device = Device());
// Seeds the default generator of every device, including ones created later.
KILN_API void manual_seed(uint64_t seed);
// `gen` when given (checked against `device`), else the device's default generator.
KILN_API Generator& resolve_generator(const GeneratorPtr& gen, Device device, const char* op);

}  // namespace kiln
