#pragma once
#include <cstdint>
#include <string>

namespace kiln::cuda {

// Bytes of device memory held by live kiln tensors on `device`, and the
// high-water mark since the last reset (kiln.cuda.memory_allocated etc.).
int64_t memory_allocated(int device);
int64_t max_memory_allocated(int device);
void reset_peak_memory_stats(int device);
// Returns memory cached by the device's stream-ordered pool to the driver.
void empty_cache();

// "" when CUDA is usable, else why not (no driver, no device, ...).
std::string unavailable_reason();

}  // namespace kiln::cuda
