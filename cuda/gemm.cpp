// gemm (matmul, mm, bmm, linear) through cuBLAS.
#include <algorithm>
#include <optional>

#include "context.h"
#include "cublas.h"
#include "kiln/dispatch.h"
#include "kiln/ops/copy.h"
#include "kiln/scalar.h"

namespace kiln::cuda {
namespace {

void check_cublas(cublasStatus_t status, const char* what) {
  if (status == CUBLAS_STATUS_SUCCESS) [[likely]] return;
  const CublasApi& api = cublas("matmul");
  throw Error(detail::concat("[matmul] cuBLAS error in ", what, ": ", api.status_name(status), " (",
                             api.status_string(status), ")"));
}

// One handle per thread and device, as cuBLAS recommends.
cublasHandle_t handle(int device) {
  constexpr int kMaxDevices = 64;
  thread_local cublasHandle_t handles[kMaxDevices] = {};
  KILN_CHECK(device >= 0 && device < kMaxDevices, ValueError, "[matmul] bad device ", device);
  if (!handles[device]) check_cublas(cublas("matmul").create(&handles[device]), "cublasCreate");
  return handles[device];
}

// How a row-major (R x C) matrix with element strides (sr, sc) reads as a
// column-major cuBLAS operand of shape (C x R): as is (ld = sr), or as the
// transpose of a column-major (R x C) matrix (ld = sc). None when neither
// dimension is unit-stride.
struct Operand {
  cublasOperation_t op;
  int64_t ld;
};
std::optional<Operand> describe(int64_t R, int64_t C, int64_t sr, int64_t sc) {
  if ((sc == 1 || C <= 1) && (R <= 1 || C == 0 || sr >= C))
    return Operand{CUBLAS_OP_N, std::max<int64_t>({R <= 1 ? 1 : sr, C, 1})};
  if ((sr == 1 || R <= 1) && (C <= 1 || R == 0 || sc >= R))
    return Operand{CUBLAS_OP_T, std::max<int64_t>({C <= 1 ? 1 : sc, R, 1})};
  return std::nullopt;
}

struct Types {
  cudaDataType_t data;
  cublasComputeType_t compute;
  bool double_scalars;
};
Types types_for(ScalarType dtype) {
  switch (dtype) {
    case ScalarType::Float32:
      return {CUDA_R_32F, allow_tf32() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, false};
    case ScalarType::Float64: return {CUDA_R_64F, CUBLAS_COMPUTE_64F, true};
    case ScalarType::Float16: return {CUDA_R_16F, CUBLAS_COMPUTE_32F, false};
    case ScalarType::BFloat16: return {CUDA_R_16BF, CUBLAS_COMPUTE_32F, false};
    default: break;
  }
  throw TypeError(detail::concat("[matmul] CUDA matmul supports floating dtypes, got ",
                                 dtype_name(dtype)));
}

// out: contiguous (B, M, N); a: (B, M, K) and b: (B, K, N) with any strides.
// Row-major out = a @ b is column-major out^T = b^T a^T, so b goes first.
void gemm_kernel(const Tensor& out, const Tensor& a_in, const Tensor& b_in, Scalar beta,
                 Scalar alpha) {
  if (out.numel() == 0) return;
  const Types types = types_for(out.dtype());
  const int64_t B = out.size(0), M = out.size(1), N = out.size(2), K = a_in.size(2);
  constexpr int64_t kIntMax = 2147483647;
  KILN_CHECK(B <= kIntMax && M <= kIntMax && N <= kIntMax && K <= kIntMax, ValueError,
             "[matmul] CUDA matmul sizes must fit in 32 bits, got batch ", B, ", ", M, "x", K,
             " @ ", K, "x", N);
  Tensor a = a_in, b = b_in;
  auto da = describe(M, K, a.stride(1), a.stride(2));
  if (!da) {
    a = contiguous(detach(a));
    da = describe(M, K, a.stride(1), a.stride(2));
  }
  auto db = describe(K, N, b.stride(1), b.stride(2));
  if (!db) {
    b = contiguous(detach(b));
    db = describe(K, N, b.stride(1), b.stride(2));
  }
  KILN_CHECK(da && db, Error, "[matmul] no cuBLAS layout for strides ", a.strides(), " and ",
             b.strides());
  const Device device = out.device();
  DeviceGuard guard(device);
  const CublasApi& api = cublas("matmul");
  cublasHandle_t h = handle(device.index);
  check_cublas(api.set_stream(h, current_stream(device)), "cublasSetStream");
  const double alpha_d = alpha.to<double>(), beta_d = beta.to<double>();
  const float alpha_f = static_cast<float>(alpha_d), beta_f = static_cast<float>(beta_d);
  const void* pa = types.double_scalars ? static_cast<const void*>(&alpha_d) : &alpha_f;
  const void* pb = types.double_scalars ? static_cast<const void*>(&beta_d) : &beta_f;
  check_cublas(
      api.gemm_strided_batched(h, db->op, da->op, static_cast<int>(N), static_cast<int>(M),
                                 static_cast<int>(K), pa, b.data_ptr(), types.data,
                                 static_cast<int>(db->ld), b.stride(0), a.data_ptr(), types.data,
                                 static_cast<int>(da->ld), a.stride(0), pb, out.data_ptr(),
                                 types.data, static_cast<int>(N), M * N, static_cast<int>(B),
                                 types.compute, CUBLAS_GEMM_DEFAULT),
      "cublasGemmStridedBatchedEx");
}

}  // namespace

KILN_REGISTER_KERNEL(gemm, CUDA, gemm_kernel);

}  // namespace kiln::cuda
