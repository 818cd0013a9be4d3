#pragma once
// Symbols are hidden by default (see CMakeLists.txt); KILN_API marks the public ones.
#define KILN_API __attribute__((visibility("default")))

// Functions shared by host and device code (CPU and CUDA kernels).
#if defined(__CUDACC__)
#define KILN_HOST_DEVICE __host__ __device__
#else
#define KILN_HOST_DEVICE
#endif
