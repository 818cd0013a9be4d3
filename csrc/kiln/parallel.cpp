#include "kiln/parallel.h"

#include <atomic>
#include <thread>

#include "kiln/error.h"

extern "C" void scipy_openblas_set_num_threads(int);

namespace kiln {
namespace {
int default_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}
std::atomic<int> g_num_threads{0};
}  // namespace

int get_num_threads() {
  int n = g_num_threads.load(std::memory_order_relaxed);
  if (n == 0) {
    n = default_threads();
    g_num_threads.store(n, std::memory_order_relaxed);
  }
  return n;
}

void set_num_threads(int n) {
  KILN_CHECK(n > 0, ValueError, "[set_num_threads] expected a positive number of threads, got ",
             n);
  g_num_threads.store(n);
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
  scipy_openblas_set_num_threads(1);  // Note [One thread pool] in cpu/gemm.cpp
}

namespace {
// OpenBLAS starts with one thread per core; kiln's GEMMs thread themselves.
const bool g_blas_single_threaded = [] {
  scipy_openblas_set_num_threads(1);
  return true;
}();
}  // namespace

}  // namespace kiln
