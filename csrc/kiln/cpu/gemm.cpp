// Batched GEMM: out[i] = beta * out[i] + alpha * a[i] @ b[i] over dim 0.
// float32/float64 go to OpenBLAS, as do large float16/bfloat16 products (widened);
// the other dtypes use a plain row loop.
#include <cblas.h>

#include <climits>
#include <vector>

#include "kiln/autograd/grad_mode.h"
#include "kiln/dispatch.h"
#include "kiln/dtype_dispatch.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/parallel.h"

namespace kiln::cpu {
namespace {

// Note [One thread pool]: OpenBLAS runs single-threaded (set_num_threads keeps it
// at 1) and GEMMs are split over kiln's OpenMP threads instead. Two pools on the
// same cores (OpenBLAS's spinning workers, our sleeping ones) fought badly on a
// busy 2-core machine: an MLP training step took 5-20x longer than with one pool.
// Products of at most this much work (m*n*k) are never split; a batch of them is
// spread over the threads instead.
constexpr double kBlasSingleThreadWork = 262144;
// A split gives each thread at least this much work: waking a sleeping worker and
// packing its own copy of the shared operand cost more than they save below it (a
// 256^3 product ran slower on two threads than on one, 512^3 about twice as fast).
constexpr double kSplitWorkPerThread = double(1 << 24);
// Row or column blocks handed to threads are multiples of this (the micro-kernel's tile).
constexpr int64_t kBlockAlign = 16;

// How BLAS reads a strided rows x cols matrix in place: row-major with leading
// dimension `ld`, possibly as the transpose of a row-major matrix.
struct BlasLayout {
  bool ok = false;
  bool trans = false;
  int64_t ld = 0;
};

BlasLayout blas_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  // Strides of size-1 dims are arbitrary and never used; a valid ld is still required.
  BlasLayout l;
  if ((cols <= 1 || cs == 1) && (rows <= 1 || rs >= std::max<int64_t>(cols, 1))) {
    l = {true, false, rows <= 1 ? std::max<int64_t>(cols, 1) : rs};
  } else if ((rows <= 1 || rs == 1) && (cols <= 1 || cs >= std::max<int64_t>(rows, 1))) {
    l = {true, true, cols <= 1 ? std::max<int64_t>(rows, 1) : cs};
  }
  if (l.ld > INT_MAX) l.ok = false;
  return l;
}

// A copy BLAS can read when the operand's last two dims have no unit stride.
Tensor blas_readable(const Tensor& t) {
  if (blas_layout(t.size(1), t.size(2), t.stride(1), t.stride(2)).ok) return t;
  autograd::NoGradGuard no_grad;
  return contiguous(t);
}

template <class T>
void blas_gemm(bool ta, bool tb, int m, int n, int k, T alpha, const T* a, int lda, const T* b,
               int ldb, T beta, T* c, int ldc) {
  const auto opa = ta ? CblasTrans : CblasNoTrans, opb = tb ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>)
    scipy_cblas_sgemm(CblasRowMajor, opa, opb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  else
    scipy_cblas_dgemm(CblasRowMajor, opa, opb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

template <class T>
void gemm_blas(const Tensor& out, const Tensor& a_in, const Tensor& b_in, T beta, T alpha) {
  const int64_t B = out.size(0), M = out.size(1), N = out.size(2), K = a_in.size(2);
  KILN_CHECK(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX, ValueError,
             "[matmul] matrix dimensions above 2^31-1 are not supported, got ", M, "x", K,
             " and ", K, "x", N);
  const Tensor a = blas_readable(a_in), b = blas_readable(b_in);
  const BlasLayout la = blas_layout(M, K, a.stride(1), a.stride(2));
  const BlasLayout lb = blas_layout(K, N, b.stride(1), b.stride(2));
  const T* ap = a.data<T>();
  const T* bp = b.data<T>();
  T* op = out.data<T>();
  const int64_t sa = a.stride(0), sb = b.stride(0), so = M * N;
  const int ldc = int(std::max<int64_t>(N, 1));
  auto run = [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      blas_gemm<T>(la.trans, lb.trans, int(M), int(N), int(K), alpha, ap + i * sa, int(la.ld),
                   bp + i * sb, int(lb.ld), beta, op + i * so, ldc);
  };
  const double work = double(M) * double(N) * double(K);
  const int64_t threads = get_num_threads();
  if (threads == 1 || work < 2 * kSplitWorkPerThread || B >= threads) {
    parallel_for(0, B, std::max<int64_t>(1, int64_t(kBlasSingleThreadWork / std::max(work, 1.0))),
                 run);
    return;
  }
  // One big product per batch entry: split the longer of its rows (a's rows, out's
  // rows) or columns (b's and out's columns) into aligned blocks, one per thread.
  const bool by_rows = M >= N;
  const int64_t len = by_rows ? M : N;
  const int64_t blocks = (len + kBlockAlign - 1) / kBlockAlign;
  const int64_t max_parts = int64_t(work / kSplitWorkPerThread);
  const int64_t grain = std::max<int64_t>(1, blocks / std::min(threads, max_parts));
  // Element offset of row/column r of a row-major matrix read as (trans ? transposed : not).
  auto row_at = [](const BlasLayout& l, int64_t r) { return l.trans ? r : r * l.ld; };
  auto col_at = [](const BlasLayout& l, int64_t c) { return l.trans ? c * l.ld : c; };
  for (int64_t i = 0; i < B; ++i) {
    parallel_for(0, blocks, grain, [&](int64_t b0, int64_t b1) {
      const int64_t lo = b0 * kBlockAlign, hi = std::min(len, b1 * kBlockAlign);
      if (by_rows)
        blas_gemm<T>(la.trans, lb.trans, int(hi - lo), int(N), int(K), alpha,
                     ap + i * sa + row_at(la, lo), int(la.ld), bp + i * sb, int(lb.ld), beta,
                     op + i * so + lo * N, ldc);
      else
        blas_gemm<T>(la.trans, lb.trans, int(M), int(hi - lo), int(K), alpha, ap + i * sa,
                     int(la.ld), bp + i * sb + col_at(lb, lo), int(lb.ld), beta,
                     op + i * so + lo, ldc);
    });
  }
}

// float16/bfloat16 accumulate in float, integers in int64 (wrapping like PyTorch on the cast back).
template <class T>
void gemm_loop(const Tensor& out, const Tensor& a, const Tensor& b, Scalar beta_s,
               Scalar alpha_s) {
  using Acc = std::conditional_t<std::is_integral_v<T>, int64_t, OpMath<T>>;
  const int64_t M = out.size(1), N = out.size(2), K = a.size(2);
  const int64_t sab = a.stride(0), sam = a.stride(1), sak = a.stride(2);
  const int64_t sbb = b.stride(0), sbk = b.stride(1), sbn = b.stride(2);
  const Acc alpha = alpha_s.to<Acc>(), beta = beta_s.to<Acc>();
  const T* ap = a.data<T>();
  const T* bp = b.data<T>();
  T* op = out.data<T>();
  const int64_t grain = std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(N * K, 1));
  parallel_for(0, out.size(0) * M, grain, [&](int64_t r0, int64_t r1) {
    std::vector<Acc> acc(N);
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t bi = r / M, i = r % M;
      std::fill(acc.begin(), acc.end(), Acc(0));
      const T* arow = ap + bi * sab + i * sam;
      for (int64_t k = 0; k < K; ++k) {
        const Acc av = static_cast<Acc>(arow[k * sak]);
        const T* brow = bp + bi * sbb + k * sbk;
        if (sbn == 1) {
          for (int64_t j = 0; j < N; ++j) acc[j] += av * static_cast<Acc>(brow[j]);
        } else {
          for (int64_t j = 0; j < N; ++j) acc[j] += av * static_cast<Acc>(brow[j * sbn]);
        }
      }
      T* orow = op + r * N;
      for (int64_t j = 0; j < N; ++j) {
        const Acc old = beta == Acc(0) ? Acc(0) : beta * static_cast<Acc>(orow[j]);
        orow[j] = static_cast<T>(alpha * acc[j] + old);
      }
    }
  });
}

// float16/bfloat16 products large enough to pay for three conversions: widened to
// float32, multiplied by BLAS and rounded once, so they accumulate in float as the
// loop does (and as PyTorch's CPU GEMM does) at BLAS speed.
constexpr double kWidenWork = 32768;

void gemm_widened(const Tensor& out, const Tensor& a, const Tensor& b, Scalar beta, Scalar alpha) {
  autograd::NoGradGuard no_grad;
  const Tensor af = to_dtype(detach(a), ScalarType::Float32);
  const Tensor bf = to_dtype(detach(b), ScalarType::Float32);
  const bool keep = beta.to_double() != 0;
  const Tensor of = keep ? to_dtype(detach(out), ScalarType::Float32)
                         : empty(out.sizes(), ScalarType::Float32, out.device());
  gemm_blas<float>(of, af, bf, keep ? beta.to<float>() : 0.0f, alpha.to<float>());
  Tensor dst = detach(out);
  copy_(dst, of);
}

// out: contiguous (B, M, N); a: (B, M, K) and b: (B, K, N) with any strides, out's dtype.
// beta == 0 means out's old contents are ignored (even NaN), as in BLAS.
void gemm_kernel(const Tensor& out, const Tensor& a, const Tensor& b, Scalar beta, Scalar alpha) {
  if (out.numel() == 0) return;
  visit_dtype(out.dtype(), [&]<class T>(TypeTag<T>) {
    if constexpr (std::is_same_v<T, bool>) {
      throw TypeError("[matmul] bool tensors are not supported");
    } else if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
      // K == 0 only scales out by beta; BLAS would reject the degenerate leading dims.
      if (a.size(2) == 0) return gemm_loop<T>(out, a, b, beta, alpha);
      gemm_blas<T>(out, a, b, beta.to<T>(), alpha.to<T>());
    } else if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) {
      const double work = double(out.numel()) * double(a.size(2));
      if (work >= kWidenWork) return gemm_widened(out, a, b, beta, alpha);
      gemm_loop<T>(out, a, b, beta, alpha);
    } else {
      gemm_loop<T>(out, a, b, beta, alpha);
    }
  });
}

}  // namespace

KILN_REGISTER_KERNEL(gemm, CPU, gemm_kernel);

}  // namespace kiln::cpu
