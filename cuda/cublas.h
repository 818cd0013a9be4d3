#pragma once
// cuBLAS, loaded on first use with dlopen: kiln._C_cuda then imports on
// machines that have only the CUDA runtime (and reports what is missing), and
// building it needs only cuBLAS's headers, not its 600 MB of libraries.
#include <cublas_v2.h>

namespace kiln::cuda {

struct CublasApi {
  decltype(&cublasCreate_v2) create;
  decltype(&cublasSetStream_v2) set_stream;
  // Spelled out: the header overloads this name (computeType as cudaDataType).
  cublasStatus_t (*gemm_strided_batched)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int,
                                         int, int, const void*, const void*, cudaDataType, int,
                                         long long, const void*, cudaDataType, int, long long,
                                         const void*, void*, cudaDataType, int, long long, int,
                                         cublasComputeType_t, cublasGemmAlgo_t);
  decltype(&cublasGetStatusName) status_name;
  decltype(&cublasGetStatusString) status_string;
};

// Throws kiln::Error naming `op` when libcublas.so.13 can't be loaded.
const CublasApi& cublas(const char* op);

}  // namespace kiln::cuda
