#pragma once
#include <cuda_runtime_api.h>

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

// Marks the block starting at `ptr` as used by `stream` too, so freeing it
// waits for that stream's work (Tensor.record_stream).
void record_stream(void* ptr, cudaStream_t stream);
// Destroys a stream created for kiln.cuda.Stream, or, while live blocks are
// freed in its order or wait for it, when the last of them is freed.
void release_stream(cudaStream_t stream);
// Whether host memory at `ptr` is page-locked (pinned) by CUDA.
bool is_pinned_host(const void* ptr);

// "" when CUDA is usable, else why not (no driver, no device, ...).
std::string unavailable_reason();

}  // namespace kiln::cuda
