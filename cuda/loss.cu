// Fused cross-entropy / NLL kernels (see Note [Loss layout] in kiln/ops/loss.h:
// row r = n * D + d holds the C class scores at n*C*D + d + c*D). Math in the stat
// dtype (MathT: float for 16-bit floats and float32), as cpu/loss.cpp. Rows with
// D == 1 are contiguous and go to a warp or a block each; otherwise a thread per
// row, whose loads coalesce across adjacent rows.
#include <limits>

#include "kiln/dispatch.h"
#include "kiln/ops/loss.h"
#include "reduce.cuh"

namespace kiln::cuda {
namespace {

using loss::Layout;

struct MaxOp {  // NaN is sticky
  template <class A>
  __device__ A operator()(A a, A b) const {
    return (b != b || b > a) ? b : a;
  }
};

// One row's view of the data, shared by forward and backward; `rank`/`size` split
// the classes among the row's threads.
template <class T>
struct Row {
  using S = MathT<T>;
  const Layout& L;
  const T* x;
  const T* w;  // null: every class weighs 1
  int64_t base;
  __device__ S at(int64_t c) const { return static_cast<S>(x[base + c * L.D]); }
  __device__ S weight(int64_t c) const { return w ? static_cast<S>(w[c]) : S(1); }
  // Smoothed probability target of class c.
  __device__ S prob(const T* y, int64_t c) const {
    const S ls = static_cast<S>(L.label_smoothing);
    return static_cast<S>(y[base + c * L.D]) * (1 - ls) + ls / static_cast<S>(L.C);
  }
};

// log(sum(exp(x))) of a row by the max-shift, so large logits don't overflow.
template <class Grp, class T>
__device__ MathT<T> row_logsumexp(const Row<T>& row, MathT<T>* smem) {
  using S = MathT<T>;
  if (row.L.log_probs) return S(0);
  S m = -std::numeric_limits<S>::infinity();
  for (int64_t c = Grp::rank(); c < row.L.C; c += Grp::size()) m = MaxOp{}(m, row.at(c));
  m = Grp::allreduce(m, MaxOp{}, smem);
  if (isinf(m) || m != m) return m;
  S s = 0;
  for (int64_t c = Grp::rank(); c < row.L.C; c += Grp::size()) s += exp(row.at(c) - m);
  return m + log(Grp::allreduce(s, Plus{}, smem));
}

// The class index of row r's target, or -1 when ignored or (recorded in `bad`:
// flag, value) out of bounds.
__device__ __forceinline__ int64_t target_class(const Layout& L, const int64_t* t, int64_t r,
                                                int64_t* bad) {
  const int64_t v = t[r];
  if (v == L.ignore_index) return -1;
  if (v < 0 || v >= L.C) {
    if (bad) {
      bad[1] = v;
      bad[0] = 1;
    }
    return -1;
  }
  return v;
}

template <RowGroup G, class T>
__global__ void loss_forward_rows(MathT<T>* out, MathT<T>* rw, MathT<T>* lp, const T* x,
                                  const T* prob_target, const int64_t* index_target, const T* w,
                                  Layout L, int64_t* bad) {
  using S = MathT<T>;
  using Grp = Rows<G>;
  __shared__ S smem[kWarp];
  const S ls = static_cast<S>(L.label_smoothing), inv_c = S(1) / static_cast<S>(L.C);
  for (int64_t r = Grp::first(); r < L.N * L.D; r += Grp::stride()) {
    const Row<T> row{L, x, w, (r / L.D) * L.C * L.D + r % L.D};
    const S z = row_logsumexp<Grp>(row, smem);
    S loss = 0, weight = 1;
    if (L.prob_target) {
      S part = 0;
      for (int64_t c = Grp::rank(); c < L.C; c += Grp::size())
        part -= row.weight(c) * row.prob(prob_target, c) * (row.at(c) - z);
      loss = Grp::allreduce(part, Plus{}, smem);
    } else {
      const int64_t t = target_class(L, index_target, r, Grp::rank() == 0 ? bad : nullptr);
      if (t < 0) {
        weight = 0;  // ignored: loss 0 (uniform across the row's threads)
      } else {
        loss = -(1 - ls) * row.weight(t) * (row.at(t) - z);
        weight = row.weight(t);
        if (ls > 0) {
          S smooth = 0;
          for (int64_t c = Grp::rank(); c < L.C; c += Grp::size())
            smooth += row.weight(c) * (row.at(c) - z);
          loss -= ls * inv_c * Grp::allreduce(smooth, Plus{}, smem);
        }
      }
    }
    if (Grp::rank() == 0) {
      lp[r] = z;
      out[r] = loss;
      rw[r] = weight;
    }
  }
}

template <RowGroup G, class T>
__global__ void loss_backward_rows(T* gx, T* gt, const MathT<T>* g_rows, bool one_g,
                                   const MathT<T>* lse, const T* x, const T* prob_target,
                                   const int64_t* index_target, const T* w, Layout L) {
  using S = MathT<T>;
  using Grp = Rows<G>;
  __shared__ S smem[kWarp];
  const S ls = static_cast<S>(L.label_smoothing), inv_c = S(1) / static_cast<S>(L.C);
  for (int64_t r = Grp::first(); r < L.N * L.D; r += Grp::stride()) {
    const Row<T> row{L, x, w, (r / L.D) * L.C * L.D + r % L.D};
    const S coef = g_rows[one_g ? 0 : r], z = lse[r];
    auto at_out = [&](int64_t c) { return row.base + c * L.D; };
    if (L.prob_target) {
      S s = 0;
      for (int64_t c = Grp::rank(); c < L.C; c += Grp::size())
        s += row.weight(c) * row.prob(prob_target, c);
      s = Grp::allreduce(s, Plus{}, smem);
      for (int64_t c = Grp::rank(); c < L.C; c += Grp::size()) {
        const S logp = row.at(c) - z;
        gx[at_out(c)] =
            convert<T>(coef * (exp(logp) * s - row.weight(c) * row.prob(prob_target, c)));
        if (gt) gt[at_out(c)] = convert<T>(-coef * (1 - ls) * row.weight(c) * logp);
      }
      continue;
    }
    // The forward checked the bounds of the same targets.
    const int64_t t = target_class(L, index_target, r, nullptr);
    if (t < 0 || L.log_probs) {
      const S v = t < 0 ? S(0) : -coef * row.weight(t);
      for (int64_t c = Grp::rank(); c < L.C; c += Grp::size())
        gx[at_out(c)] = convert<T>(c == t ? v : S(0));
      continue;
    }
    S wsum = static_cast<S>(L.C);
    if (ls > 0 && w) {
      S part = 0;
      for (int64_t c = Grp::rank(); c < L.C; c += Grp::size()) part += row.weight(c);
      wsum = Grp::allreduce(part, Plus{}, smem);
    }
    const S wt = row.weight(t);
    for (int64_t c = Grp::rank(); c < L.C; c += Grp::size()) {
      const S p = exp(row.at(c) - z);
      S v = (1 - ls) * wt * (p - (c == t ? S(1) : S(0)));
      if (ls > 0) v += ls * inv_c * (wsum * p - row.weight(c));
      gx[at_out(c)] = convert<T>(coef * v);
    }
  }
}

template <class T>
T* typed(const Tensor& t) {
  return t.defined() ? reinterpret_cast<T*>(t.data_ptr()) : nullptr;
}

// Calls launch(TypeTag<T>{}, group, blocks, threads, stream) for the rows of the layout
// (T: x's device type): a thread per row when D > 1, else a warp or a block.
template <class Launch>
void launch_loss_rows(const Tensor& x, const Layout& L, const Launch& launch) {
  visit_floating(x.dtype(), L.op, [&]<class K>(TypeTag<K>) {
    DeviceGuard guard(x.device());
    launch_rows(
        L.N * L.D, L.C, x.device(), L.op,
        [&](auto g, unsigned blocks, int threads, cudaStream_t st) {
          launch(TypeTag<DeviceT<K>>{}, g, blocks, threads, st);
        },
        L.D > 1 ? RowLaunch::Threads : RowLaunch::Groups);
  });
}

template <class T>
const T* prob_target(const Tensor& target, const Layout& L) {
  return L.prob_target ? typed<const T>(target) : nullptr;
}
inline const int64_t* index_target(const Tensor& target, const Layout& L) {
  return L.prob_target ? nullptr : typed<const int64_t>(target);
}

}  // namespace

// Per row: its loss, its weight in the mean's denominator, and logsumexp (for backward).
// Out-of-bounds class targets raise IndexError as on the CPU; that check is the one
// host read here (it waits for the kernel), standing in for PyTorch's device assert.
void loss_forward_cuda(const Tensor& loss_rows, const Tensor& row_weight, const Tensor& lse,
                       const Tensor& x, const Tensor& target, const Tensor& weight, Layout L) {
  const Device device = x.device();
  const bool check_targets = !L.prob_target && L.N * L.D > 0;
  const Tensor bad = check_targets ? zeros({2}, ScalarType::Int64, device) : Tensor();
  launch_loss_rows(x, L,
                   [&]<class T>(TypeTag<T>, auto g, unsigned blocks, int threads, cudaStream_t st) {
                     using S = MathT<T>;
                     loss_forward_rows<decltype(g)::value, T><<<blocks, threads, 0, st>>>(
                         typed<S>(loss_rows), typed<S>(row_weight), typed<S>(lse),
                         typed<const T>(x), prob_target<T>(target, L), index_target(target, L),
                         typed<const T>(weight), L, typed<int64_t>(bad));
                   });
  if (!check_targets) return;
  DeviceGuard guard(device);
  const cudaStream_t stream = current_stream(device);
  int64_t host[2] = {0, 0};
  check(cudaMemcpyAsync(host, bad.data_ptr(), sizeof(host), cudaMemcpyDeviceToHost, stream), L.op);
  check(cudaStreamSynchronize(stream), L.op);
  KILN_CHECK(host[0] == 0, IndexError, "[", L.op, "] target ", host[1], " is out of bounds for ",
             L.C, " classes");
}

// gx (and gt, the probability target's gradient, when defined) for upstream
// coefficients g_rows (one per row, or a single one for all rows).
void loss_backward_cuda(const Tensor& gx, const Tensor& gt, const Tensor& g_rows, const Tensor& x,
                        const Tensor& target, const Tensor& weight, const Tensor& lse, Layout L) {
  launch_loss_rows(x, L,
                   [&]<class T>(TypeTag<T>, auto g, unsigned blocks, int threads, cudaStream_t st) {
                     using S = MathT<T>;
                     loss_backward_rows<decltype(g)::value, T><<<blocks, threads, 0, st>>>(
                         typed<T>(gx), typed<T>(gt), typed<const S>(g_rows), g_rows.numel() == 1,
                         typed<const S>(lse), typed<const T>(x), prob_target<T>(target, L),
                         index_target(target, L), typed<const T>(weight), L);
                   });
}

KILN_REGISTER_KERNEL(loss_forward, CUDA, loss_forward_cuda);
KILN_REGISTER_KERNEL(loss_backward, CUDA, loss_backward_cuda);

}  // namespace kiln::cuda
