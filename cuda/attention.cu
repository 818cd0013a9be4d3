// The fused forward of scaled_dot_product_attention (kiln/ops/attention.h),
// flash-attention style: a block holds a tile of BQ query rows in shared
// memory and streams the keys and values past it BK at a time, keeping each
// row's running max and sum (online softmax) and its output in float, so the
// (L, S) score matrix is never stored. Plain FMA on shared memory, no tensor
// cores: simple rather than fastest.
#include <cmath>

#include "kiln/dispatch.h"
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

// D: head dims up to D (query/key and value); each of the kBlock threads owns
// BQ * D / kBlock entries of the output tile.
template <class T, int D, int BQ, int BK>
__global__ void __launch_bounds__(kBlock)
    attention_fwd(T* out, const T* q, const T* k, const T* v, MaskRef mask, int64_t tiles,
                  int64_t L, int64_t S, int E, int Ev, bool causal, float scale) {
  constexpr int kPer = BQ * D / kBlock;
  static_assert(kPer * kBlock == BQ * D, "the output tile must split evenly over the threads");
  __shared__ float qs[BQ][D];
  __shared__ float kv[BK][D + 1];  // keys, then values; odd row length: no bank conflicts
  __shared__ float ps[BQ][BK + 1];  // scores, then probabilities
  __shared__ float row_max[BQ], row_sum[BQ], row_scale[BQ];

  const int tid = threadIdx.x;
  const int64_t b = blockIdx.x / tiles, q0 = (blockIdx.x % tiles) * BQ;
  const T* qb = q + b * L * E;
  const T* kb = k + b * S * E;
  const T* vb = v + b * S * Ev;
  const int64_t mask_at = mask.data ? mask.offset(b) : 0;

  for (int i = tid; i < BQ * D; i += kBlock) {
    const int r = i / D, c = i % D;
    qs[r][c] = q0 + r < L && c < E ? static_cast<float>(qb[(q0 + r) * E + c]) : 0.f;
  }
  for (int r = tid; r < BQ; r += kBlock) {
    row_max[r] = -INFINITY;
    row_sum[r] = 0.f;
  }
  float acc[kPer];
#pragma unroll
  for (int j = 0; j < kPer; ++j) acc[j] = 0.f;
  // Causal: query i sees keys j <= i, so no key past this tile's last row.
  const int64_t s_end = causal ? std::min<int64_t>(S, q0 + BQ) : S;
  __syncthreads();

  for (int64_t s0 = 0; s0 < s_end; s0 += BK) {
    for (int i = tid; i < BK * D; i += kBlock) {
      const int r = i / D, c = i % D;
      kv[r][c] = s0 + r < S && c < E ? static_cast<float>(kb[(s0 + r) * E + c]) : 0.f;
    }
    __syncthreads();
    // Scores q . k * scale + mask; -inf where masked or outside the matrix.
    for (int i = tid; i < BQ * BK; i += kBlock) {
      const int r = i / BK, c = i % BK;
      const int64_t qi = q0 + r, kj = s0 + c;
      float s = -INFINITY;
      if (qi < L && kj < S && !(causal && kj > qi)) {
        float dot = 0.f;
        for (int d = 0; d < E; ++d) dot += qs[r][d] * kv[c][d];
        s = dot * scale;
        if (mask.data) {
          const int64_t at = mask_at + qi * mask.sl + kj * mask.ss;
          if (mask.is_bool)
            s = static_cast<const bool*>(mask.data)[at] ? s : -INFINITY;
          else
            s += static_cast<float>(static_cast<const T*>(mask.data)[at]);
        }
      }
      ps[r][c] = s;
    }
    __syncthreads();
    // Online softmax, a thread per row: rescale what came before by
    // exp(old max - new max). A row with every score so far masked keeps
    // max -inf and adds nothing.
    for (int r = tid; r < BQ; r += kBlock) {
      float m = row_max[r];
      for (int c = 0; c < BK; ++c) m = fmaxf(m, ps[r][c]);
      const bool none = m == -INFINITY;
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
    for (int i = tid; i < BK * D; i += kBlock) {  // kv is free: the scores are done
      const int r = i / D, c = i % D;
      kv[r][c] = s0 + r < S && c < Ev ? static_cast<float>(vb[(s0 + r) * Ev + c]) : 0.f;
    }
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
  // A row with nothing to attend to gives zeros.
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int i = tid + j * kBlock, r = i / D, c = i % D;
    if (q0 + r < L && c < Ev) {
      const float l = row_sum[r];
      out[(b * L + q0 + r) * Ev + c] = T(l > 0.f ? acc[j] / l : 0.f);
    }
  }
}

template <class T, int D, int BQ, int BK>
void launch(const Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
            const MaskRef& mask, bool causal, double scale) {
  const int64_t B = q.size(0), L = q.size(1), S = k.size(1);
  const int64_t tiles = (L + BQ - 1) / BQ;
  KILN_CHECK(B * tiles < (int64_t(1) << 31), ValueError,
             "[scaled_dot_product_attention] too many query rows: batch ", B, ", length ", L);
  attention_fwd<T, D, BQ, BK>
      <<<static_cast<unsigned>(B * tiles), kBlock, 0, current_stream(out.device())>>>(
          static_cast<T*>(out.data_ptr()), static_cast<const T*>(q.data_ptr()),
          static_cast<const T*>(k.data_ptr()), static_cast<const T*>(v.data_ptr()), mask, tiles,
          L, S, static_cast<int>(q.size(2)), static_cast<int>(v.size(2)), causal,
          static_cast<float>(scale));
  check_launch("scaled_dot_product_attention");
}

}  // namespace

// See AttentionKernel in csrc/kiln/ops/attention.cpp: declines float64, head
// dims over 256 and masks of more than kMaxMaskBatchDims batch dims.
bool attention_cuda(const Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
                    const Tensor& mask, bool causal, double scale) {
  const int64_t D = std::max(q.size(2), v.size(2));
  const ScalarType dt = q.dtype();
  if (D > 256 || !(dt == ScalarType::Float32 || dt == ScalarType::Float16 ||
                   dt == ScalarType::BFloat16))
    return false;
  MaskRef m{};
  if (mask.defined()) {
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
  }
  if (out.numel() == 0) return true;
  DeviceGuard guard(out.device());
  visit_floating(dt, "scaled_dot_product_attention", [&]<class K>(TypeTag<K>) {
    using T = DeviceT<K>;
    if constexpr (!std::is_same_v<K, double>) {
      if (D <= 32)
        launch<T, 32, 64, 64>(out, q, k, v, m, causal, scale);
      else if (D <= 64)
        launch<T, 64, 64, 32>(out, q, k, v, m, causal, scale);
      else if (D <= 128)
        launch<T, 128, 32, 32>(out, q, k, v, m, causal, scale);
      else
        launch<T, 256, 16, 16>(out, q, k, v, m, causal, scale);
    }
  });
  return true;
}

KILN_REGISTER_KERNEL(attention, CUDA, attention_cuda);

}  // namespace kiln::cuda
