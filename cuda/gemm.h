#pragma once
// Batched GEMM through cuBLAS on raw device memory, for kernels that build
// their operands themselves (matmul, convolution).
#include <cstdint>

#include "context.h"
#include "kiln/device.h"
#include "kiln/dtype.h"

namespace kiln::cuda {

// A row-major (batch of) matrices in device memory: element (b, i, j) lives
// at ptr + b * batch + i * row + j * col, strides in elements.
struct MatrixRef {
  const void* ptr;
  int64_t batch, row, col;
};

// c[b] = alpha * a[b] @ b[b] + beta * c[b] for b < B, with a[b] (M x K),
// b[b] (K x N), c[b] (M x N), on the current stream of `device`, float32 with
// TF32 where `tf32`'s switch allows it. a and b need
// one unit stride each (row or column), c a unit column stride; otherwise, or
// for sizes beyond 32 bits, throws naming `op`.
void batched_gemm(Device device, ScalarType dtype, int64_t B, int64_t M, int64_t N, int64_t K,
                  const MatrixRef& a, const MatrixRef& b, const MatrixRef& c, double alpha,
                  double beta, Tf32Switch tf32, const char* op);

}  // namespace kiln::cuda
