// Fused scaled_dot_product_attention (kiln/ops/attention.h), flash-attention
// style: the (L, S) score matrix is never stored.
//  - forward: a block holds a tile of BQ query rows in shared memory and
//    streams the keys and values past it BK at a time, keeping each row's
//    running max and sum (online softmax) and its output in float; it also
//    writes each row's logsumexp for the backward;
//  - backward: with P = exp(S - logsumexp) recomputed tile by tile, one kernel
//    per key tile accumulates dK and dV over the query tiles, one per query
//    tile accumulates dQ over the key tiles (no atomics: fixed order).
// Plain FMA on shared memory, no tensor cores: simple rather than fastest. 16-bit
// problems cuDNN's fused attention takes run there first (attention_cudnn.h);
// large ones it leaves go to the composed path (see composed_is_faster).
#include <cmath>

#include "attention_cudnn.h"
#include "kiln/dispatch.h"
#include "kiln/ops/view.h"
#include "nn_util.cuh"

namespace kiln::cuda {
namespace {

constexpr int kMaxMaskBatchDims = 6;

// The mask of batch b, query i, key j lives at offset(b) + i * sl + j * ss
// (elements); broadcast dims have stride 0.
struct MaskRef {
  const void* data;  // null: no mask
  bool is_bool;      // else additive, of the inputs' dtype
  int nbatch;
  int64_t size[kMaxMaskBatchDims], stride[kMaxMaskBatchDims];
  int64_t sl, ss;
  __device__ int64_t offset(int64_t b) const {
    int64_t off = 0;
    for (int d = nbatch - 1; d >= 0; --d) {
      off += (b % size[d]) * stride[d];
      b /= size[d];
    }
    return off;
  }
};

// Sizes and options of one attention call: batch entries of q (L, E), k (S, E), v (S, Ev).
struct Problem {
  int64_t L, S;
  int E, Ev;
  bool causal;
  float scale;
  MaskRef mask;

  // The score of query qi and key kj from their dot product (mask_at: the
  // mask's offset for this batch entry); -inf where masked or outside the matrix.
  template <class T>
  __device__ float score(float dot, int64_t qi, int64_t kj, int64_t mask_at) const {
    if (qi >= L || kj >= S || (causal && kj > qi)) return -INFINITY;
    float s = dot * scale;
    if (mask.data) {
      const int64_t at = mask_at + qi * mask.sl + kj * mask.ss;
      if (mask.is_bool)
        s = static_cast<const bool*>(mask.data)[at] ? s : -INFINITY;
      else
        s += static_cast<float>(static_cast<const T*>(mask.data)[at]);
    }
    return s;
  }
};

// Rows [row0, row0 + ROWS) of a contiguous (nrows, cols) matrix into shared
// memory as float, zero past its end; rows are D + 1 long (no bank conflicts).
template <class T, int D, int ROWS>
__device__ void load_rows(float (&dst)[ROWS][D + 1], const T* src, int64_t row0, int64_t nrows,
                          int cols) {
  for (int i = threadIdx.x; i < ROWS * D; i += kBlock) {
    const int r = i / D, c = i % D;
    dst[r][c] = row0 + r < nrows && c < cols ? static_cast<float>(src[(row0 + r) * cols + c]) : 0.f;
  }
}

template <int D, int ROWS_A, int ROWS_B>
__device__ float dot(const float (&a)[ROWS_A][D + 1], int ra, const float (&b)[ROWS_B][D + 1],
                     int rb, int n) {
  float s = 0.f;
  for (int d = 0; d < n; ++d) s += a[ra][d] * b[rb][d];
  return s;
}

// ---- forward -----------------------------------------------------------------------------

// D: head dims up to D (query/key and value); each of the kBlock threads owns
// BQ * D / kBlock entries of the output tile.
template <class T, int D, int BQ, int BK>
__global__ void __launch_bounds__(kBlock)
    attention_fwd(T* out, float* lse, const T* q, const T* k, const T* v, Problem pr,
                  int64_t tiles) {
  constexpr int kPer = BQ * D / kBlock;
  static_assert(kPer * kBlock == BQ * D, "the output tile must split evenly over the threads");
  __shared__ float qs[BQ][D + 1];
  __shared__ float kv[BK][D + 1];  // keys, then values
  __shared__ float ps[BQ][BK + 1];  // scores, then probabilities
  __shared__ float row_max[BQ], row_sum[BQ], row_scale[BQ];

  const int tid = threadIdx.x;
  const int64_t b = blockIdx.x / tiles, q0 = (blockIdx.x % tiles) * BQ;
  const int64_t L = pr.L, S = pr.S;
  const T* kb = k + b * S * pr.E;
  const T* vb = v + b * S * pr.Ev;
  const int64_t mask_at = pr.mask.data ? pr.mask.offset(b) : 0;

  load_rows<T, D, BQ>(qs, q + b * L * pr.E, q0, L, pr.E);
  for (int r = tid; r < BQ; r += kBlock) {
    row_max[r] = -INFINITY;
    row_sum[r] = 0.f;
  }
  float acc[kPer];
#pragma unroll
  for (int j = 0; j < kPer; ++j) acc[j] = 0.f;
  // Causal: query i sees keys j <= i, so no key past this tile's last row.
  const int64_t s_end = pr.causal ? std::min<int64_t>(S, q0 + BQ) : S;
  __syncthreads();

  for (int64_t s0 = 0; s0 < s_end; s0 += BK) {
    load_rows<T, D, BK>(kv, kb, s0, S, pr.E);
    __syncthreads();
    for (int i = tid; i < BQ * BK; i += kBlock) {
      const int r = i / BK, c = i % BK;
      ps[r][c] = pr.score<T>(dot<D>(qs, r, kv, c, pr.E), q0 + r, s0 + c, mask_at);
    }
    __syncthreads();
    // Online softmax, a thread per row: rescale what came before by
    // exp(old max - new max). A row with every score so far masked keeps
    // max -inf and adds nothing; NaN scores (which fmaxf skips) make NaNs.
    for (int r = tid; r < BQ; r += kBlock) {
      float m = row_max[r];
      bool nan = false;
      for (int c = 0; c < BK; ++c) {
        m = fmaxf(m, ps[r][c]);
        nan |= ps[r][c] != ps[r][c];
      }
      const bool none = m == -INFINITY && !nan;
      float sum = 0.f;
      for (int c = 0; c < BK; ++c) {
        const float p = none ? 0.f : expf(ps[r][c] - m);
        ps[r][c] = p;
        sum += p;
      }
      const float alpha = none ? 1.f : expf(row_max[r] - m);
      row_sum[r] = row_sum[r] * alpha + sum;
      row_max[r] = m;
      row_scale[r] = alpha;
    }
    load_rows<T, D, BK>(kv, vb, s0, S, pr.Ev);  // kv is free: the scores are done
    __syncthreads();
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      const int i = tid + j * kBlock, r = i / D, c = i % D;
      float a = acc[j] * row_scale[r];
      for (int t = 0; t < BK; ++t) a += ps[r][t] * kv[t][c];
      acc[j] = a;
    }
    __syncthreads();
  }
  // A row with nothing to attend to gives zeros (and logsumexp -inf).
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int i = tid + j * kBlock, r = i / D, c = i % D;
    if (q0 + r < L && c < pr.Ev) {
      const float l = row_sum[r];
      out[(b * L + q0 + r) * pr.Ev + c] = T(l == 0.f ? 0.f : acc[j] / l);
    }
  }
  for (int r = tid; r < BQ; r += kBlock)
    if (q0 + r < L)
      lse[b * L + q0 + r] = row_sum[r] == 0.f ? -INFINITY : row_max[r] + logf(row_sum[r]);
}

// ---- backward ----------------------------------------------------------------------------

// delta[row] = dot(grad_out[row], out[row]) (= the row sum of P * dP).
template <class T>
__global__ void attention_delta(int64_t rows, float* delta, const T* out, const T* grad_out,
                                int Ev) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (row >= rows) return;
  float s = 0.f;
  for (int c = 0; c < Ev; ++c)
    s += static_cast<float>(out[row * Ev + c]) * static_cast<float>(grad_out[row * Ev + c]);
  delta[row] = s;
}

// A (BQ queries) x (BK keys) tile of the backward: the inputs' rows in shared
// memory, then the probabilities P and the score gradients dS = P * (dP - delta).
template <int D, int BQ, int BK>
struct BackwardTile {
  float q[BQ][D + 1], dout[BQ][D + 1];
  float k[BK][D + 1], v[BK][D + 1];
  float p[BQ][BK + 1], ds[BQ][BK + 1];
  float lse[BQ], delta[BQ];
};

template <class T, int D, int BQ, int BK>
__device__ void load_query_rows(BackwardTile<D, BQ, BK>& t, const T* q, const T* dout,
                                const float* lse, const float* delta, int64_t b, int64_t q0,
                                const Problem& pr) {
  load_rows<T, D, BQ>(t.q, q + b * pr.L * pr.E, q0, pr.L, pr.E);
  load_rows<T, D, BQ>(t.dout, dout + b * pr.L * pr.Ev, q0, pr.L, pr.Ev);
  for (int r = threadIdx.x; r < BQ; r += kBlock) {
    const bool inside = q0 + r < pr.L;
    t.lse[r] = inside ? lse[b * pr.L + q0 + r] : -INFINITY;
    t.delta[r] = inside ? delta[b * pr.L + q0 + r] : 0.f;
  }
}

template <class T, int D, int BQ, int BK>
__device__ void load_key_rows(BackwardTile<D, BQ, BK>& t, const T* k, const T* v, int64_t b,
                              int64_t s0, const Problem& pr) {
  load_rows<T, D, BK>(t.k, k + b * pr.S * pr.E, s0, pr.S, pr.E);
  load_rows<T, D, BK>(t.v, v + b * pr.S * pr.Ev, s0, pr.S, pr.Ev);
}

// Fills t.p and t.ds for queries q0.. and keys s0.. (0 where masked or outside).
template <class T, int D, int BQ, int BK>
__device__ void tile_gradients(BackwardTile<D, BQ, BK>& t, int64_t q0, int64_t s0,
                               int64_t mask_at, const Problem& pr) {
  for (int i = threadIdx.x; i < BQ * BK; i += kBlock) {
    const int r = i / BK, c = i % BK;
    float p = 0.f, ds = 0.f;
    if (t.lse[r] != -INFINITY) {
      const float s = pr.score<T>(dot<D>(t.q, r, t.k, c, pr.E), q0 + r, s0 + c, mask_at);
      if (s != -INFINITY) {
        p = expf(s - t.lse[r]);
        ds = p * (dot<D>(t.dout, r, t.v, c, pr.Ev) - t.delta[r]);
      }
    }
    t.p[r][c] = p;
    t.ds[r][c] = ds;
  }
}

// dK, dV of keys s0.. : sums over every query tile of P^T dO and dS^T Q * scale.
template <class T, int D, int BQ, int BK>
__global__ void __launch_bounds__(kBlock)
    attention_bwd_kv(T* gk, T* gv, const T* q, const T* k, const T* v, const T* dout,
                     const float* lse, const float* delta, Problem pr, int64_t tiles) {
  constexpr int kPer = BK * D / kBlock;
  static_assert(kPer * kBlock == BK * D, "the key tile must split evenly over the threads");
  __shared__ BackwardTile<D, BQ, BK> t;
  const int64_t b = blockIdx.x / tiles, s0 = (blockIdx.x % tiles) * BK;
  const int64_t mask_at = pr.mask.data ? pr.mask.offset(b) : 0;
  load_key_rows<T, D, BQ, BK>(t, k, v, b, s0, pr);
  float dk[kPer], dv[kPer];
#pragma unroll
  for (int j = 0; j < kPer; ++j) dk[j] = dv[j] = 0.f;
  // Causal: queries before s0 see none of these keys.
  for (int64_t q0 = pr.causal ? s0 / BQ * BQ : 0; q0 < pr.L; q0 += BQ) {
    load_query_rows<T, D, BQ, BK>(t, q, dout, lse, delta, b, q0, pr);
    __syncthreads();
    tile_gradients<T, D, BQ, BK>(t, q0, s0, mask_at, pr);
    __syncthreads();
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      const int i = threadIdx.x + j * kBlock, c = i / D, e = i % D;
      float a = dv[j], g = dk[j];
      for (int r = 0; r < BQ; ++r) {
        a += t.p[r][c] * t.dout[r][e];
        g += t.ds[r][c] * t.q[r][e];
      }
      dv[j] = a;
      dk[j] = g;
    }
    __syncthreads();
  }
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int i = threadIdx.x + j * kBlock, c = i / D, e = i % D;
    if (s0 + c >= pr.S) continue;
    if (e < pr.E) gk[(b * pr.S + s0 + c) * pr.E + e] = T(dk[j] * pr.scale);
    if (e < pr.Ev) gv[(b * pr.S + s0 + c) * pr.Ev + e] = T(dv[j]);
  }
}

// dQ of queries q0.. : the sum over every key tile of dS K * scale.
template <class T, int D, int BQ, int BK>
__global__ void __launch_bounds__(kBlock)
    attention_bwd_q(T* gq, const T* q, const T* k, const T* v, const T* dout, const float* lse,
                    const float* delta, Problem pr, int64_t tiles) {
  constexpr int kPer = BQ * D / kBlock;
  static_assert(kPer * kBlock == BQ * D, "the query tile must split evenly over the threads");
  __shared__ BackwardTile<D, BQ, BK> t;
  const int64_t b = blockIdx.x / tiles, q0 = (blockIdx.x % tiles) * BQ;
  const int64_t mask_at = pr.mask.data ? pr.mask.offset(b) : 0;
  load_query_rows<T, D, BQ, BK>(t, q, dout, lse, delta, b, q0, pr);
  float dq[kPer];
#pragma unroll
  for (int j = 0; j < kPer; ++j) dq[j] = 0.f;
  const int64_t s_end = pr.causal ? std::min<int64_t>(pr.S, q0 + BQ) : pr.S;
  for (int64_t s0 = 0; s0 < s_end; s0 += BK) {
    load_key_rows<T, D, BQ, BK>(t, k, v, b, s0, pr);
    __syncthreads();
    tile_gradients<T, D, BQ, BK>(t, q0, s0, mask_at, pr);
    __syncthreads();
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      const int i = threadIdx.x + j * kBlock, r = i / D, e = i % D;
      float a = dq[j];
      for (int c = 0; c < BK; ++c) a += t.ds[r][c] * t.k[c][e];
      dq[j] = a;
    }
    __syncthreads();
  }
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int i = threadIdx.x + j * kBlock, r = i / D, e = i % D;
    if (q0 + r < pr.L && e < pr.E) gq[(b * pr.L + q0 + r) * pr.E + e] = T(dq[j] * pr.scale);
  }
}

// ---- host side ---------------------------------------------------------------------------

// The problem of q (batch..., L, E), k (batch..., S, E), v (batch..., S, Ev);
// false where the kernels decline: float64, head dims over max_head, masks of
// too many batch dims.
bool describe(Problem& pr, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
              bool causal, double scale, int64_t max_head) {
  const ScalarType dt = q.dtype();
  if (std::max(q.size(-1), v.size(-1)) > max_head ||
      !(dt == ScalarType::Float32 || dt == ScalarType::Float16 || dt == ScalarType::BFloat16))
    return false;
  pr = Problem{q.size(-2), k.size(-2), static_cast<int>(q.size(-1)), static_cast<int>(v.size(-1)),
               causal, static_cast<float>(scale), MaskRef{}};
  if (!mask.defined()) return true;
  MaskRef& m = pr.mask;
  m.nbatch = static_cast<int>(mask.dim()) - 2;
  if (m.nbatch > kMaxMaskBatchDims) return false;
  m.data = mask.data_ptr();
  m.is_bool = mask.dtype() == ScalarType::Bool;
  for (int d = 0; d < m.nbatch; ++d) {
    m.size[d] = mask.size(d);
    m.stride[d] = mask.stride(d);
  }
  m.sl = mask.stride(-2);
  m.ss = mask.stride(-1);
  return true;
}

// The element count of t's batch dims (all but the last two).
int64_t batch_numel(const Tensor& t) {
  int64_t n = 1;
  for (int64_t d = 0; d + 2 < t.dim(); ++d) n *= t.size(d);
  return n;
}

// t (batch..., rows, cols) as the kernels read it: a contiguous (B, rows, cols).
Tensor flat(const Tensor& t, int64_t B) { return reshape(contiguous(t), {B, t.size(-2), t.size(-1)}); }

// Blocks for `rows` rows of `batch` entries, tile rows per block.
int64_t tiles_of(int64_t rows, int tile) { return (rows + tile - 1) / tile; }
unsigned grid(int64_t batch, int64_t tiles) {
  KILN_CHECK(batch * tiles < (int64_t(1) << 31), ValueError,
             "[scaled_dot_product_attention] too large: batch ", batch, ", ", tiles, " tiles");
  return static_cast<unsigned>(batch * tiles);
}

// Calls f.template operator()<T>() with T the device type of the (16-bit or float32) dtype.
template <class F>
void visit_attention_dtype(ScalarType dt, const F& f) {
  visit_floating(dt, "scaled_dot_product_attention", [&]<class K>(TypeTag<K>) {
    if constexpr (!std::is_same_v<K, double>) f.template operator()<DeviceT<K>>();
  });
}

template <class T, int D, int BQ, int BK>
void forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k,
             const Tensor& v, const Problem& pr) {
  const int64_t tiles = tiles_of(pr.L, BQ);
  attention_fwd<T, D, BQ, BK><<<grid(q.size(0), tiles), kBlock, 0, current_stream(out.device())>>>(
      static_cast<T*>(out.data_ptr()), lse.data<float>(), static_cast<const T*>(q.data_ptr()),
      static_cast<const T*>(k.data_ptr()), static_cast<const T*>(v.data_ptr()), pr, tiles);
  check_launch("scaled_dot_product_attention");
}

template <class T, int D, int BQ, int BK>
void backward(const Tensor& gq, const Tensor& gk, const Tensor& gv, const Tensor& q,
              const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& gout,
              const Tensor& lse, const Problem& pr) {
  const cudaStream_t stream = current_stream(q.device());
  const int64_t B = q.size(0), rows = B * pr.L;
  const Tensor delta = empty({rows}, ScalarType::Float32, q.device());
  const auto ptr = [](const Tensor& t) { return static_cast<const T*>(t.data_ptr()); };
  if (rows > 0) {
    attention_delta<<<blocks_for(rows, "scaled_dot_product_attention"), kBlock, 0, stream>>>(
        rows, delta.data<float>(), ptr(out), ptr(gout), pr.Ev);
    check_launch("scaled_dot_product_attention");
  }
  if (gk.numel() > 0 || gv.numel() > 0) {
    const int64_t tiles = tiles_of(pr.S, BK);
    attention_bwd_kv<T, D, BQ, BK><<<grid(B, tiles), kBlock, 0, stream>>>(
        static_cast<T*>(gk.data_ptr()), static_cast<T*>(gv.data_ptr()), ptr(q), ptr(k), ptr(v),
        ptr(gout), lse.data<float>(), delta.data<float>(), pr, tiles);
    check_launch("scaled_dot_product_attention");
  }
  if (gq.numel() > 0) {
    const int64_t tiles = tiles_of(pr.L, BQ);
    attention_bwd_q<T, D, BQ, BK><<<grid(B, tiles), kBlock, 0, stream>>>(
        static_cast<T*>(gq.data_ptr()), ptr(q), ptr(k), ptr(v), ptr(gout), lse.data<float>(),
        delta.data<float>(), pr, tiles);
    check_launch("scaled_dot_product_attention");
  }
}

// These kernels use no tensor cores. Once the (B, L, S) score matrix is large,
// the composed path (cuBLAS GEMMs around a softmax kernel) is several times
// faster (H100, B 256, L = S = 512, head 64: 11 ms per layer fused, forward
// and backward); the fused forward declines those problems while their scores
// fit comfortably in memory, and keeps the rest (small ones, where its single
// launch wins, and huge ones, where its O(L) memory does).
constexpr int64_t kComposedMinScores = int64_t(1) << 22;
constexpr int64_t kComposedMaxScoreBytes = int64_t(1) << 30;
bool composed_is_faster(const Tensor& q, const Tensor& k) {
  const int64_t scores = batch_numel(q) * q.size(-2) * k.size(-2);
  return scores >= kComposedMinScores && scores * q.itemsize() <= kComposedMaxScoreBytes;
}

}  // namespace

// See AttentionKernel in csrc/kiln/ops/attention.cpp.
bool attention_cuda(Tensor& out, Tensor& lse, const Tensor& q_in, const Tensor& k_in,
                    const Tensor& v_in, const Tensor& mask, bool causal, double scale) {
  if (cudnn_attention(out, lse, q_in, k_in, v_in, mask, causal, scale)) return true;
  Problem pr;
  if (composed_is_faster(q_in, k_in) || !describe(pr, q_in, k_in, v_in, mask, causal, scale, 256))
    return false;
  const int64_t B = batch_numel(q_in);
  const Tensor q = flat(q_in, B), k = flat(k_in, B), v = flat(v_in, B);
  const Tensor o = empty({B, pr.L, pr.Ev}, q.dtype(), q.device());
  lse = empty({B, pr.L}, ScalarType::Float32, q.device());
  Shape out_shape = q_in.sizes();
  out_shape.back() = pr.Ev;
  out = reshape(o, out_shape);
  // Not out.numel(): with Ev == 0 the output is empty but the backward still reads lse.
  if (lse.numel() == 0) return true;
  DeviceGuard guard(o.device());
  const int64_t D = std::max(pr.E, pr.Ev);
  visit_attention_dtype(q.dtype(), [&]<class T>() {
    if (D <= 32)
      forward<T, 32, 64, 64>(o, lse, q, k, v, pr);
    else if (D <= 64)
      forward<T, 64, 64, 32>(o, lse, q, k, v, pr);
    else if (D <= 128)
      forward<T, 128, 32, 32>(o, lse, q, k, v, pr);
    else
      forward<T, 256, 16, 16>(o, lse, q, k, v, pr);
  });
  return true;
}

// See AttentionBackwardKernel in csrc/kiln/ops/attention.cpp.
bool attention_backward_cuda(Tensor& gq, Tensor& gk, Tensor& gv, const Tensor& q_in,
                             const Tensor& k_in, const Tensor& v_in, const Tensor& out,
                             const Tensor& gout, const Tensor& lse, const Tensor& mask,
                             bool causal, double scale) {
  if (cudnn_attention_backward(gq, gk, gv, q_in, k_in, v_in, out, gout, lse, mask, causal, scale))
    return true;
  Problem pr;
  if (!describe(pr, q_in, k_in, v_in, mask, causal, scale, 128)) return false;
  const int64_t B = batch_numel(q_in);
  const Tensor q = flat(q_in, B), k = flat(k_in, B), v = flat(v_in, B);
  const Tensor gqf = empty(q.sizes(), q.dtype(), q.device()),
               gkf = empty(k.sizes(), q.dtype(), q.device()),
               gvf = empty(v.sizes(), q.dtype(), q.device());
  gq = reshape(gqf, q_in.sizes());
  gk = reshape(gkf, k_in.sizes());
  gv = reshape(gvf, v_in.sizes());
  DeviceGuard guard(q.device());
  const Tensor o = flat(out, B), g = flat(gout, B);
  const int64_t D = std::max(pr.E, pr.Ev);
  visit_attention_dtype(q.dtype(), [&]<class T>() {
    if (D <= 32)
      backward<T, 32, 32, 32>(gqf, gkf, gvf, q, k, v, o, g, lse, pr);
    else if (D <= 64)
      backward<T, 64, 32, 32>(gqf, gkf, gvf, q, k, v, o, g, lse, pr);
    else
      backward<T, 128, 16, 16>(gqf, gkf, gvf, q, k, v, o, g, lse, pr);
  });
  return true;
}

KILN_REGISTER_KERNEL(attention, CUDA, attention_cuda);
KILN_REGISTER_KERNEL(attention_backward, CUDA, attention_backward_cuda);

}  // namespace kiln::cuda
