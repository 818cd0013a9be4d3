#include "kiln/generator.h"

#include <chrono>
#include <cstring>
#include <map>
#include <random>
#include <utility>

#include "kiln/error.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"

namespace kiln {

Generator::Generator(Device device, uint64_t seed) : device_(device), seed_(seed) {}

void Generator::manual_seed(uint64_t seed) {
  std::lock_guard<std::mutex> lock(mutex_);
  seed_ = seed;
  offset_ = 0;
}

uint64_t Generator::seed() {
  // random_device alone may be deterministic on some platforms; mix in the clock.
  std::random_device rd;
  const uint64_t s = bits64(rd(), rd()) ^
                     static_cast<uint64_t>(std::chrono::high_resolution_clock::now()
                                               .time_since_epoch()
                                               .count());
  manual_seed(s);
  return s;
}

uint64_t Generator::initial_seed() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return seed_;
}

PhiloxSeed Generator::next() {
  std::lock_guard<std::mutex> lock(mutex_);
  return {seed_, offset_++};
}

Tensor Generator::get_state() const {
  Tensor state = empty({static_cast<int64_t>(kStateBytes)}, ScalarType::UInt8);
  std::lock_guard<std::mutex> lock(mutex_);
  const uint64_t words[2] = {seed_, offset_};
  std::memcpy(state.data_ptr(), words, kStateBytes);
  return state;
}

void Generator::set_state(const Tensor& state) {
  KILN_CHECK(state.dtype() == ScalarType::UInt8, TypeError,
             "[Generator.set_state] expected a uint8 tensor, got ", state.dtype());
  KILN_CHECK(state.numel() == static_cast<int64_t>(kStateBytes), ValueError,
             "[Generator.set_state] expected a state of ", kStateBytes, " bytes, got ",
             state.numel());
  Tensor c = contiguous(to_device(detach(state), Device()));
  uint64_t words[2];
  std::memcpy(words, c.data_ptr(), kStateBytes);
  std::lock_guard<std::mutex> lock(mutex_);
  seed_ = words[0];
  offset_ = words[1];
}

namespace {
// The default generators, created on first use with the last manual_seed's seed.
struct DefaultGenerators {
  std::mutex mutex;
  std::map<std::pair<int, int>, GeneratorPtr> by_device;
  uint64_t seed = Generator::kDefaultSeed;
};
DefaultGenerators& defaults() {
  static auto* d = new DefaultGenerators();  // never destroyed: used until exit
  return *d;
}
}  // namespace

const GeneratorPtr& default_generator(Device device) {
  device = resolve_device(device);  // "cuda" is the current CUDA device's generator
  auto& d = defaults();
  std::lock_guard<std::mutex> lock(d.mutex);
  auto& g = d.by_device[{static_cast<int>(device.type), device.index}];
  if (!g) g = std::make_shared<Generator>(device, d.seed);
  return g;
}

void manual_seed(uint64_t seed) {
  auto& d = defaults();
  std::lock_guard<std::mutex> lock(d.mutex);
  d.seed = seed;
  for (auto& [key, g] : d.by_device) g->manual_seed(seed);
}

Generator& resolve_generator(const GeneratorPtr& gen, Device device, const char* op) {
  if (!gen) return *default_generator(device);
  KILN_CHECK(gen->device().type == device.type, ValueError, "[", op, "] expected a generator on ",
             device, ", got one on ", gen->device());
  return *gen;
}

}  // namespace kiln
