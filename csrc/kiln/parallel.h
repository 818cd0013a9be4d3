#pragma once
#include <algorithm>
#include <cstdint>
#include <exception>

#include "kiln/macros.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace kiln {

KILN_API int get_num_threads();
KILN_API void set_num_threads(int n);  // OpenBLAS itself stays at 1 (kiln splits GEMMs)

// Elements below which a loop stays on one thread (thread start-up costs more).
constexpr int64_t kParallelGrain = 32768;

// Splits [begin, end) into at most get_num_threads() chunks of >= grain and
// calls f(chunk_begin, chunk_end) on each; exceptions propagate to the caller.
template <class F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, const F& f) {
  const int64_t n = end - begin;
  if (n <= 0) return;
#ifdef _OPENMP
  const int64_t max_chunks = grain > 0 ? (n + grain - 1) / grain : n;
  const int nthreads = static_cast<int>(std::min<int64_t>(get_num_threads(), max_chunks));
  if (nthreads > 1 && !omp_in_parallel()) {
    std::exception_ptr error;
#pragma omp parallel num_threads(nthreads)
    {
      const int tid = omp_get_thread_num();
      const int64_t chunk = (n + nthreads - 1) / nthreads;
      const int64_t b = begin + tid * chunk, e = std::min(end, b + chunk);
      if (b < e) {
        try {
          f(b, e);
        } catch (...) {
#pragma omp critical
          if (!error) error = std::current_exception();
        }
      }
    }
    if (error) std::rethrow_exception(error);
    return;
  }
#endif
  f(begin, end);
}

}  // namespace kiln
