#include "kiln/dispatch.h"

#include <map>
#include <memory>
#include <mutex>

#include "kiln/error.h"

namespace kiln::dispatch {
namespace {
struct Registry {
  std::mutex mutex;
  std::map<std::string, std::unique_ptr<OpEntry>, std::less<>> entries;
};
Registry& registry() {
  static Registry r;
  return r;
}
}  // namespace

OpEntry& op_entry(const char* name) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto it = r.entries.find(std::string_view(name));
  if (it != r.entries.end()) return *it->second;
  auto e = std::make_unique<OpEntry>();
  e->name = name;
  OpEntry& ref = *e;
  r.entries.emplace(name, std::move(e));
  return ref;
}

void check_signature(OpEntry& entry, const char* signature) {
  std::lock_guard<std::mutex> lock(registry().mutex);
  if (entry.signature.empty()) {
    entry.signature = signature;
    return;
  }
  KILN_CHECK(entry.signature == signature, Error, "[dispatch] kernel signature mismatch for op '",
             entry.name, "'");
}

void register_kernel(const char* name, DeviceType device, void* fn, const char* signature) {
  OpEntry& e = op_entry(name);
  check_signature(e, signature);
  e.kernels[static_cast<int>(device)] = fn;
}

bool has_kernel(const char* name, DeviceType device) {
  return op_entry(name).kernels[static_cast<int>(device)] != nullptr;
}

std::vector<std::string> ops_with_kernel(DeviceType device) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::vector<std::string> names;
  for (const auto& [name, entry] : r.entries)
    if (entry->kernels[static_cast<int>(device)]) names.push_back(name);
  return names;
}

void throw_no_kernel(const OpEntry& entry, Device device) {
  throw NotImplementedError("[" + entry.name + "] no kernel for device " + device.str() +
                            (device.is_cuda() ? " (is kiln's CUDA backend built and loaded?)"
                                              : ""));
}

void throw_device_mismatch(const OpEntry& entry, Device want, Device got) {
  throw Error("[" + entry.name + "] expected all tensors to be on the same device, but found at " +
              "least two devices, " + want.str() + " and " + got.str());
}

}  // namespace kiln::dispatch
