// gemm (matmul, mm, bmm, linear) and batched_gemm (gemm.h) through cuBLAS.
#include <algorithm>
#include <optional>

#include "context.h"
#include "cublas.h"
#include "gemm.h"
#include "kiln/dispatch.h"
#include "kiln/ops/copy.h"
#include "kiln/scalar.h"

namespace kiln::cuda {
namespace {

void check_cublas(cublasStatus_t status, const char* what, const char* op) {
  if (status == CUBLAS_STATUS_SUCCESS) [[likely]] return;
  const CublasApi& api = cublas(op);
  throw Error(detail::concat("[", op, "] cuBLAS error in ", what, ": ", api.status_name(status),
                             " (", api.status_string(status), ")"));
}

// One handle per thread and device, as cuBLAS recommends.
cublasHandle_t handle(int device) {
  constexpr int kMaxDevices = 64;
  thread_local cublasHandle_t handles[kMaxDevices] = {};
  KILN_CHECK(device >= 0 && device < kMaxDevices, ValueError, "[matmul] bad device ", device);
  if (!handles[device])
    check_cublas(cublas("matmul").create(&handles[device]), "cublasCreate", "matmul");
  return handles[device];
}

constexpr int64_t kIntMax = 2147483647;

// How a row-major (R x C) matrix with element strides (sr, sc) reads as a
// column-major cuBLAS operand of shape (C x R): as is (ld = sr), or as the
// transpose of a column-major (R x C) matrix (ld = sc). None when neither
// dimension is unit-stride, or the leading dimension does not fit cuBLAS's int.
struct Operand {
  cublasOperation_t op;
  int64_t ld;
};
std::optional<Operand> describe(int64_t R, int64_t C, int64_t sr, int64_t sc) {
  std::optional<Operand> d;
  if ((sc == 1 || C <= 1) && (R <= 1 || C == 0 || sr >= C))
    d = Operand{CUBLAS_OP_N, std::max<int64_t>({R <= 1 ? 1 : sr, C, 1})};
  else if ((sr == 1 || R <= 1) && (C <= 1 || R == 0 || sc >= R))
    d = Operand{CUBLAS_OP_T, std::max<int64_t>({C <= 1 ? 1 : sc, R, 1})};
  if (d && d->ld > kIntMax) return std::nullopt;
  return d;
}

struct Types {
  cudaDataType_t data;
  cublasComputeType_t compute;
  bool double_scalars;
};
Types types_for(ScalarType dtype, Tf32Switch tf32, const char* op) {
  switch (dtype) {
    case ScalarType::Float32:
      return {CUDA_R_32F, allow_tf32(tf32) ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F,
              false};
    case ScalarType::Float64: return {CUDA_R_64F, CUBLAS_COMPUTE_64F, true};
    case ScalarType::Float16: return {CUDA_R_16F, CUBLAS_COMPUTE_32F, false};
    case ScalarType::BFloat16: return {CUDA_R_16BF, CUBLAS_COMPUTE_32F, false};
    default: break;
  }
  throw TypeError(detail::concat("[", op, "] CUDA ", op, " supports floating dtypes, got ",
                                 dtype_name(dtype)));
}

// out: contiguous (B, M, N); a: (B, M, K) and b: (B, K, N) with any strides.
void gemm_kernel(const Tensor& out, const Tensor& a_in, const Tensor& b_in, Scalar beta,
                 Scalar alpha) {
  if (out.numel() == 0) return;
  const int64_t B = out.size(0), M = out.size(1), N = out.size(2), K = a_in.size(2);
  Tensor a = a_in, b = b_in;
  if (!describe(M, K, a.stride(1), a.stride(2))) a = contiguous(detach(a));
  if (!describe(K, N, b.stride(1), b.stride(2))) b = contiguous(detach(b));
  batched_gemm(out.device(), out.dtype(), B, M, N, K,
               {a.data_ptr(), a.stride(0), a.stride(1), a.stride(2)},
               {b.data_ptr(), b.stride(0), b.stride(1), b.stride(2)},
               {out.data_ptr(), M * N, N, 1}, alpha.to<double>(), beta.to<double>(),
               Tf32Switch::Matmul, "matmul");
}

}  // namespace

// Row-major c = a @ b is column-major c^T = b^T a^T, so b goes first.
void batched_gemm(Device device, ScalarType dtype, int64_t B, int64_t M, int64_t N, int64_t K,
                  const MatrixRef& a, const MatrixRef& b, const MatrixRef& c, double alpha,
                  double beta, Tf32Switch tf32, const char* op) {
  if (B == 0 || M == 0 || N == 0) return;
  const Types types = types_for(dtype, tf32, op);
  KILN_CHECK(B <= kIntMax && M <= kIntMax && N <= kIntMax && K <= kIntMax, ValueError, "[", op,
             "] CUDA GEMM sizes must fit in 32 bits, got batch ", B, ", ", M, "x", K, " @ ", K,
             "x", N);
  const auto da = describe(M, K, a.row, a.col), db = describe(K, N, b.row, b.col);
  const int64_t ldc = M <= 1 ? std::max<int64_t>(N, 1) : c.row;
  KILN_CHECK(da && db && (c.col == 1 || N <= 1) && ldc <= kIntMax, Error, "[", op,
             "] no cuBLAS layout for strides (", a.row, ", ", a.col, "), (", b.row, ", ", b.col,
             ") and (", c.row, ", ", c.col, ")");
  DeviceGuard guard(device);
  const CublasApi& api = cublas(op);
  cublasHandle_t h = handle(device.index);
  check_cublas(api.set_stream(h, current_stream(device)), "cublasSetStream", op);
  const float alpha_f = static_cast<float>(alpha), beta_f = static_cast<float>(beta);
  const void* pa = types.double_scalars ? static_cast<const void*>(&alpha) : &alpha_f;
  const void* pb = types.double_scalars ? static_cast<const void*>(&beta) : &beta_f;
  check_cublas(api.gemm_strided_batched(
                   h, db->op, da->op, static_cast<int>(N), static_cast<int>(M),
                   static_cast<int>(K), pa, b.ptr, types.data, static_cast<int>(db->ld), b.batch,
                   a.ptr, types.data, static_cast<int>(da->ld), a.batch, pb,
                   const_cast<void*>(c.ptr), types.data, static_cast<int>(ldc), c.batch,
                   static_cast<int>(B), types.compute, CUBLAS_GEMM_DEFAULT),
               "cublasGemmStridedBatchedEx", op);
}

KILN_REGISTER_KERNEL(gemm, CUDA, gemm_kernel);

}  // namespace kiln::cuda
