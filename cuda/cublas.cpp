#include "cublas.h"

#include <mutex>
#include <string>

#include "kiln/error.h"
#include "resolve_symbol.h"

namespace kiln::cuda {

const CublasApi& cublas(const char* op) {
  static CublasApi api{};
  static std::string error;
  static std::once_flag once;
  std::call_once(once, [] {
    // Found when kiln.cuda preloaded it from the nvidia-cublas wheel, else
    // through this module's RPATH and the system's library path.
    void* lib = dlopen("libcublas.so.13", RTLD_NOW | RTLD_GLOBAL);
    if (!lib) {
      const char* why = dlerror();
      error = std::string("libcublas.so.13 could not be loaded (") + (why ? why : "unknown") +
              "); install it with pip install \"kiln[cuda]\"";
      return;
    }
    std::string missing;
    resolve_symbol(lib, "cublasCreate_v2", api.create, missing);
    resolve_symbol(lib, "cublasSetStream_v2", api.set_stream, missing);
    resolve_symbol(lib, "cublasGemmStridedBatchedEx", api.gemm_strided_batched, missing);
    resolve_symbol(lib, "cublasGetStatusName", api.status_name, missing);
    resolve_symbol(lib, "cublasGetStatusString", api.status_string, missing);
    if (!missing.empty()) error = "libcublas.so.13 lacks " + missing;
  });
  KILN_CHECK(error.empty(), Error, "[", op, "] ", error);
  return api;
}

}  // namespace kiln::cuda
