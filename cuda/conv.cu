// Convolution kernels on CUDA: im2col / col2im (unfold / fold) and the
// convolutions, through cuDNN (conv_cudnn.h) where it is loaded and takes the
// case, else as im2col + cuBLAS GEMM (+ col2im) over runs of images whose
// columns fit one workspace, a kiln tensor on the device.
//
// Column layouts (ConvGeometry in kiln/ops/conv.h): entry (image n, row
// r = c * kh * kw + k, position l) of the columns lives at n * sn + r * sr + l;
//  - per image (conv2d, conv_transpose2d): sn = rows * L, sr = L, so each image's
//    (groups, Kg, L) block is one GEMM operand;
//  - unfold layout (im2col, col2im, the weight gradient): sn = L, sr = n * L,
//    so (n, l) is one long GEMM dimension that the weight gradient sums over.
#include "conv_cudnn.h"
#include "gemm.h"
#include "kiln/dispatch.h"
#include "kiln/ops/conv.h"
#include "kiln/ops/reduce.h"
#include "kiln/ops/view.h"
#include "nn_util.cuh"

namespace kiln::cuda {
namespace {

// Bytes of columns one run of images may take.
constexpr int64_t kWorkspaceBytes = int64_t(256) << 20;

// Calls f(TypeTag<T>) with T the device type of the floating dtype dt (16-bit
// floats: cuBLAS accumulates their GEMMs in float, col2im sums them in float).
template <class F>
void visit_conv_dtype(ScalarType dt, const char* op, const F& f) {
  visit_floating(dt, op, [&]<class K>(TypeTag<K>) { f(TypeTag<DeviceT<K>>{}); });
}

// Images of an input with any strides.
struct ImageRef {
  const void* data;
  int64_t sn, sc, sy, sx;
};
ImageRef image_ref(const Tensor& t) {
  return {t.data_ptr(), t.stride(0), t.stride(1), t.stride(2), t.stride(3)};
}

// One thread per column entry of images [0, nb) (pointers already at the run's
// first image). Its index math is all divisions: with 32-bit indices (I =
// uint32_t) they go through `div`, a multiply-high and a shift each.
struct ColumnDivisors {
  FastDivmod L, nb, K, out_w, kw;
};

template <class T, class I>
__global__ void im2col_k(I total, T* cols, int64_t sn, int64_t sr, const T* in, ImageRef im,
                         ConvGeometry g, I nb, ColumnDivisors div) {
  const I e = static_cast<I>(blockIdx.x) * static_cast<I>(blockDim.x) + static_cast<I>(threadIdx.x);
  if (e >= total) return;
  int64_t l, n, r, c, oy, ox, ky, kx;  // e = (r * nb + n) * L + l, r = c * K + ky * kw + kx
  if constexpr (std::is_same_v<I, uint32_t>) {
    const uint32_t t = div.L.div(e), rr = div.nb.div(t), cc = div.K.div(rr);
    const uint32_t ll = div.L.mod(e, t), k = div.K.mod(rr, cc);
    const uint32_t yy = div.out_w.div(ll), kyy = div.kw.div(k);
    l = ll, n = div.nb.mod(t, rr), r = rr, c = cc;
    oy = yy, ox = div.out_w.mod(ll, yy), ky = kyy, kx = div.kw.mod(k, kyy);
  } else {
    const int64_t L = g.out_h * g.out_w, K = g.kh * g.kw;
    l = e % L;
    const int64_t t = e / L;
    n = t % nb, r = t / nb, c = r / K;
    const int64_t k = r % K;
    oy = l / g.out_w, ox = l % g.out_w, ky = k / g.kw, kx = k % g.kw;
  }
  const int64_t y = oy * g.sh - g.ph + ky * g.dh, x = ox * g.sw - g.pw + kx * g.dw;
  const bool inside = y >= 0 && y < g.height && x >= 0 && x < g.width;
  cols[n * sn + r * sr + l] = inside ? in[n * im.sn + c * im.sc + y * im.sy + x * im.sx] : T(0.f);
}

// col2im_k indexes in I, int32_t whenever the element count fits (64-bit
// divisions cost several times more); addresses are computed in 64 bits.
template <class F>
void with_index_type(int64_t total, const F& f) {
  if (total <= std::numeric_limits<int32_t>::max() - kBlock)
    f(int32_t{});
  else
    f(int64_t{});
}

// The adjoint, as a gather: each pixel of contiguous images [0, nb) becomes
// bias + the sum of the column entries that read it, taps in order (as on the CPU).
template <class T, class I>
__global__ void col2im_k(I total, T* img, const T* cols, int64_t sn, int64_t sr, const T* bias,
                         ConvGeometry g) {
  const I e = static_cast<I>(blockIdx.x) * static_cast<I>(blockDim.x) + static_cast<I>(threadIdx.x);
  if (e >= total) return;
  const I W = static_cast<I>(g.width), H = static_cast<I>(g.height);
  const I C = static_cast<I>(g.channels);
  const I x = e % W, y = (e / W) % H, c = (e / (W * H)) % C, n = e / (W * H * C);
  const I kh = static_cast<I>(g.kh), kw = static_cast<I>(g.kw), K = kh * kw;
  const I sh = static_cast<I>(g.sh), sw = static_cast<I>(g.sw);
  const I out_h = static_cast<I>(g.out_h), out_w = static_cast<I>(g.out_w);
  using M = MathT<T>;
  M acc = bias ? static_cast<M>(bias[c]) : M(0);
  for (I ki = 0; ki < kh; ++ki) {
    const I ty = y + static_cast<I>(g.ph) - ki * static_cast<I>(g.dh);
    if (ty < 0 || ty % sh != 0 || ty / sh >= out_h) continue;
    for (I kj = 0; kj < kw; ++kj) {
      const I tx = x + static_cast<I>(g.pw) - kj * static_cast<I>(g.dw);
      if (tx < 0 || tx % sw != 0 || tx / sw >= out_w) continue;
      acc +=
          static_cast<M>(cols[n * sn + (c * K + ki * kw + kj) * sr + (ty / sh) * out_w + tx / sw]);
    }
  }
  img[e] = convert<T>(acc);
}

// out (contiguous (n, C, L)) = bias[c], or += with kAdd. A thread writes V elements
// (16-byte accesses where L and the pointer allow) of plane i / (L / V), channel
// plane % C: divisions by multiply-high, as a bias pass is all index math otherwise.
template <bool kAdd, int V, class T>
__global__ void bias_k(uint32_t vectors, T* out, const T* bias, FastDivmod plane_vectors,
                       FastDivmod channels) {
  const uint32_t i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= vectors) return;
  const uint32_t plane = plane_vectors.div(i);
  const T b = bias[channels.mod(plane, channels.div(plane))];
  auto* at = reinterpret_cast<Vec<T, V>*>(out) + i;
  Vec<T, V> v;
  if constexpr (kAdd) {
    using M = MathT<T>;
    v = *at;
#pragma unroll
    for (int k = 0; k < V; ++k) v.v[k] = convert<T>(static_cast<M>(v.v[k]) + static_cast<M>(b));
  } else {
#pragma unroll
    for (int k = 0; k < V; ++k) v.v[k] = b;
  }
  *at = v;
}

// The same with 64-bit indices, one element per thread, for 2^31 elements and more.
template <bool kAdd, class T>
__global__ void bias_wide_k(int64_t total, T* out, const T* bias, int64_t C, int64_t L) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= total) return;
  if constexpr (kAdd)
    out[e] = convert<T>(static_cast<MathT<T>>(out[e]) + static_cast<MathT<T>>(bias[(e / L) % C]));
  else
    out[e] = bias[(e / L) % C];
}

template <bool kAdd, int V, class T>
void launch_bias(const Tensor& out, const T* bias, int64_t C, int64_t L, cudaStream_t stream,
                 const char* op) {
  const int64_t vectors = out.numel() / V;
  bias_k<kAdd, V><<<blocks_for(vectors, op), kBlock, 0, stream>>>(
      static_cast<uint32_t>(vectors), out.data<T>(), bias, FastDivmod(static_cast<uint32_t>(L / V)),
      FastDivmod(static_cast<uint32_t>(C)));
}

// Writes (or with kAdd adds) the per-channel bias to contiguous (n, C, L) `out`.
template <bool kAdd, class T>
void apply_bias(const Tensor& out, const T* bias, int64_t C, int64_t L, cudaStream_t stream,
                const char* op) {
  constexpr int kVec = 16 / sizeof(T);
  const int64_t total = out.numel();
  if (total == 0) return;
  if (total >= (int64_t(1) << 31) - kBlock) {
    bias_wide_k<kAdd><<<blocks_for(total, op), kBlock, 0, stream>>>(total, out.data<T>(), bias, C,
                                                                     L);
  } else if (L % kVec == 0 && reinterpret_cast<uintptr_t>(out.data_ptr()) % 16 == 0) {
    launch_bias<kAdd, kVec>(out, bias, C, L, stream, op);
  } else {
    launch_bias<kAdd, 1>(out, bias, C, L, stream, op);
  }
  check_launch(op);
}

template <class T>
void im2col(T* cols, int64_t sn, int64_t sr, const Tensor& input, int64_t n0, int64_t nb,
            const ConvGeometry& g, cudaStream_t stream, const char* op) {
  const int64_t total = g.channels * g.kh * g.kw * nb * g.out_h * g.out_w;
  if (total == 0) return;
  const ImageRef im = image_ref(input);
  const T* first = static_cast<const T*>(input.data_ptr()) + n0 * im.sn;
  const unsigned blocks = blocks_for(total, op);
  if (total <= std::numeric_limits<int32_t>::max() - kBlock) {
    const auto fast = [](int64_t d) { return FastDivmod(static_cast<uint32_t>(d)); };
    const ColumnDivisors div{fast(g.out_h * g.out_w), fast(nb), fast(g.kh * g.kw), fast(g.out_w),
                             fast(g.kw)};
    im2col_k<T, uint32_t><<<blocks, kBlock, 0, stream>>>(
        static_cast<uint32_t>(total), cols, sn, sr, first, im, g, static_cast<uint32_t>(nb), div);
  } else {
    im2col_k<T, int64_t>
        <<<blocks, kBlock, 0, stream>>>(total, cols, sn, sr, first, im, g, nb, ColumnDivisors{});
  }
  check_launch(op);
}

template <class T>
void col2im(T* img, const T* cols, int64_t sn, int64_t sr, const T* bias, int64_t nb,
            const ConvGeometry& g, cudaStream_t stream, const char* op) {
  const int64_t total = nb * g.channels * g.height * g.width;
  if (total == 0) return;
  const int64_t columns = nb * g.channels * g.kh * g.kw * g.out_h * g.out_w;
  with_index_type(std::max(total, columns), [&](auto zero) {
    using I = decltype(zero);
    col2im_k<T, I><<<blocks_for(total, op), kBlock, 0, stream>>>(static_cast<I>(total), img, cols,
                                                                 sn, sr, bias, g);
  });
  check_launch(op);
}

// Images per run: as many as fit the workspace, at least one.
int64_t run_length(int64_t n, int64_t bytes_per_image) {
  return std::clamp<int64_t>(kWorkspaceBytes / std::max<int64_t>(bytes_per_image, 1), 1,
                             std::max<int64_t>(n, 1));
}

// A 1x1 kernel at stride 1 without padding (nor output_padding): each image is its own columns.
bool pointwise(const ConvGeometry& g) {
  return g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0 &&
         g.out_h == g.height && g.out_w == g.width;
}

}  // namespace

// cols: contiguous (channels * kh * kw, n * out_h * out_w); input: any strides.
void im2col_kernel(const Tensor& cols, const Tensor& input, const ConvGeometry& g) {
  visit_conv_dtype(input.dtype(), "unfold", [&]<class T>(TypeTag<T>) {
    DeviceGuard guard(cols.device());
    const int64_t L = g.out_h * g.out_w;
    im2col(cols.data<T>(), L, g.n * L, input, 0, g.n, g, current_stream(cols.device()), "unfold");
  });
}

// image: contiguous (n, channels, height, width), overwritten; cols as in im2col.
void col2im_kernel(const Tensor& image, const Tensor& cols, const ConvGeometry& g) {
  visit_conv_dtype(image.dtype(), "fold", [&]<class T>(TypeTag<T>) {
    DeviceGuard guard(image.device());
    const int64_t L = g.out_h * g.out_w;
    col2im(image.data<T>(), cols.data<T>(), L, g.n * L, static_cast<const T*>(nullptr), g.n, g,
           current_stream(image.device()), "fold");
  });
}

// out: contiguous (n, O, out_h, out_w); input (n, channels, height, width), any
// strides; weight: contiguous (O, channels/groups, kh, kw); bias: (O) or undefined.
void conv2d_kernel(const Tensor& out, const Tensor& input, const Tensor& weight, const Tensor& bias,
                   const ConvGeometry& g) {
  visit_conv_dtype(input.dtype(), "conv2d", [&]<class T>(TypeTag<T>) {
    const Device device = out.device();
    DeviceGuard guard(device);
    const cudaStream_t stream = current_stream(device);
    const int64_t O = weight.size(0), G = g.groups, Og = O / G, Kg = weight.numel() / O;
    const int64_t L = g.out_h * g.out_w, rows = G * Kg;
    if (out.numel() == 0) return;
    if (bias.defined()) apply_bias<false>(out, bias.data<T>(), O, L, stream, "conv2d");
    if (cudnn_convolution(ConvPass::Forward, input, weight, out, g, bias.defined() ? 1.0 : 0.0,
                          "conv2d"))
      return;
    const bool direct = pointwise(g) && input.is_contiguous();
    const int64_t run = direct ? g.n : run_length(g.n, rows * L * int64_t(sizeof(T)));
    const Tensor cols = direct ? Tensor() : empty({run * rows * L}, input.dtype(), device);
    for (int64_t n0 = 0; n0 < g.n; n0 += run) {
      const int64_t nb = std::min(run, g.n - n0);
      const T* c = direct ? input.data<T>() + n0 * rows * L : cols.data<T>();
      if (!direct) im2col(cols.data<T>(), rows * L, L, input, n0, nb, g, stream, "conv2d");
      // Per group: (nb, Og, Kg) weights (shared) @ (nb, Kg, L) columns.
      for (int64_t gi = 0; gi < G; ++gi)
        batched_gemm(device, input.dtype(), nb, Og, L, Kg,
                     {weight.data<T>() + gi * Og * Kg, 0, Kg, 1}, {c + gi * Kg * L, rows * L, L, 1},
                     {out.data<T>() + (n0 * O + gi * Og) * L, O * L, L, 1}, 1.0,
                     bias.defined() ? 1.0 : 0.0, Tf32Switch::Convolution, "conv2d");
    }
  });
}

// The transposed convolution: out (n, channels, height, width) contiguous, from
// input (n, C, out_h, out_w) contiguous and weight (C, channels/groups, kh, kw)
// contiguous; bias: (channels) or undefined.
void conv_transpose2d_kernel(const Tensor& out, const Tensor& input, const Tensor& weight,
                             const Tensor& bias, const ConvGeometry& g) {
  visit_conv_dtype(input.dtype(), "conv_transpose2d", [&]<class T>(TypeTag<T>) {
    const Device device = out.device();
    DeviceGuard guard(device);
    const cudaStream_t stream = current_stream(device);
    const int64_t C = input.size(1), G = g.groups, Cg = C / G;
    const int64_t Kg = weight.size(1) * g.kh * g.kw, L = g.out_h * g.out_w, rows = G * Kg;
    if (out.numel() == 0) return;
    const T* b = bias.defined() ? bias.data<T>() : nullptr;
    // cuDNN's backward-data pass is this op.
    if (cudnn_convolution(ConvPass::BackwardData, out, weight, input, g, 0.0, "conv_transpose2d")) {
      if (b) apply_bias<true>(out, b, g.channels, g.height * g.width, stream, "conv_transpose2d");
      return;
    }
    // 1x1 at stride 1: the columns are the output itself.
    const bool direct = pointwise(g);
    if (direct && b) apply_bias<false>(out, b, g.channels, L, stream, "conv_transpose2d");
    const int64_t run = direct ? g.n : run_length(g.n, rows * L * int64_t(sizeof(T)));
    const Tensor cols = direct ? Tensor() : empty({run * rows * L}, input.dtype(), device);
    for (int64_t n0 = 0; n0 < g.n; n0 += run) {
      const int64_t nb = std::min(run, g.n - n0);
      T* c = direct ? out.data<T>() + n0 * rows * L : cols.data<T>();
      // Per group: (nb, Kg, Cg) transposed weights (shared) @ (nb, Cg, L) input.
      for (int64_t gi = 0; gi < G; ++gi)
        batched_gemm(device, input.dtype(), nb, Kg, L, Cg,
                     {weight.data<T>() + gi * Cg * Kg, 0, 1, Kg},
                     {input.data<T>() + (n0 * C + gi * Cg) * L, C * L, L, 1},
                     {c + gi * Kg * L, rows * L, L, 1}, 1.0, direct && b ? 1.0 : 0.0,
                     Tf32Switch::Convolution, "conv_transpose2d");
      if (!direct)
        col2im(out.data<T>() + n0 * g.channels * g.height * g.width, c, rows * L, L, b, nb, g,
               stream, "conv_transpose2d");
    }
  });
}

// The weight gradient of conv2d, sum over images of grad_out[n] @ columns(input[n])^T,
// into contiguous grad_weight (O, channels/groups, kh, kw); with grad_bias
// defined, also the bias gradient (O). grad_out: contiguous (n, O, out_h, out_w).
// Without cuDNN, grad_out goes to (O, n * L) first so that each run of images is
// one GEMM per group whose inner dimension runs over the images' positions.
void conv2d_weight_grad_kernel(const Tensor& grad_weight, const Tensor& grad_bias,
                               const Tensor& input, const Tensor& grad_out, const ConvGeometry& g) {
  visit_conv_dtype(input.dtype(), "conv2d", [&]<class T>(TypeTag<T>) {
    const Device device = grad_weight.device();
    DeviceGuard guard(device);
    const cudaStream_t stream = current_stream(device);
    const int64_t O = grad_weight.size(0), G = g.groups, Og = O / G;
    const int64_t Kg = grad_weight.numel() / O, L = g.out_h * g.out_w, rows = G * Kg;
    const int64_t NL = g.n * L;
    const auto set_grad_bias = [&](const Tensor& sums) {
      Tensor out = grad_bias;
      copy_(out, sums);
    };
    if (cudnn_convolution(ConvPass::BackwardFilter, input, grad_weight, grad_out, g, 0.0,
                          "conv2d")) {
      if (grad_bias.defined()) set_grad_bias(sum(grad_out, {0, 2, 3}));
      return;
    }
    const Tensor gy = contiguous(transpose(reshape(grad_out, {g.n, O, L}), 0, 1));  // (O, n, L)
    // The reduction launcher splits these few long rows over the whole GPU.
    if (grad_bias.defined()) set_grad_bias(sum(reshape(gy, {O, NL}), {1}));
    if (NL == 0) {
      check(cudaMemsetAsync(grad_weight.data_ptr(), 0, grad_weight.numel() * sizeof(T), stream),
            "conv2d");
      return;
    }
    const int64_t run = run_length(g.n, rows * L * int64_t(sizeof(T)));
    const Tensor cols = empty({run * rows * L}, input.dtype(), device);
    for (int64_t n0 = 0; n0 < g.n; n0 += run) {
      const int64_t nb = std::min(run, g.n - n0);
      im2col(cols.data<T>(), L, nb * L, input, n0, nb, g, stream, "conv2d");
      // grad_weight[g] (Og, Kg) (+)= gy[g] (Og, nb * L) @ cols[g]^T (nb * L, Kg).
      batched_gemm(
          device, input.dtype(), G, Og, Kg, nb * L, {gy.data<T>() + n0 * L, Og * NL, NL, 1},
          {cols.data<T>(), Kg * nb * L, 1, nb * L}, {grad_weight.data<T>(), Og * Kg, Kg, 1}, 1.0,
          n0 == 0 ? 0.0 : 1.0, Tf32Switch::Convolution, "conv2d");
    }
  });
}

KILN_REGISTER_KERNEL(im2col, CUDA, im2col_kernel);
KILN_REGISTER_KERNEL(col2im, CUDA, col2im_kernel);
KILN_REGISTER_KERNEL(conv2d, CUDA, conv2d_kernel);
KILN_REGISTER_KERNEL(conv_transpose2d, CUDA, conv_transpose2d_kernel);
KILN_REGISTER_KERNEL(conv2d_weight_grad, CUDA, conv2d_weight_grad_kernel);

}  // namespace kiln::cuda
