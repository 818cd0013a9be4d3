// Convolution kernels: im2col / col2im over a batch (unfold / fold), and the
// convolutions themselves as per-image im2col + GEMM (+ col2im), so that one
// image's columns stay in cache between being written and being multiplied.
#include "kiln/ops/conv.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kiln/dispatch.h"
#include "kiln/dtype_dispatch.h"
#include "kiln/ops/creation.h"
#include "kiln/parallel.h"


namespace kiln::cpu {
namespace {

int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

// Grid positions o in [lo, hi) whose input index o*stride + offset lies in [0, size).
struct Range {
  int64_t lo, hi;
};
Range valid_range(int64_t offset, int64_t stride, int64_t size, int64_t grid) {
  const int64_t lo = std::clamp<int64_t>(ceil_div(-offset, stride), 0, grid);
  const int64_t hi = std::clamp<int64_t>(ceil_div(size - offset, stride), lo, grid);
  return {lo, hi};
}

template <class F>
void visit_float(const Tensor& t, const char* op, const F& f) {
  visit_dtype(t.dtype(), [&]<class T>(TypeTag<T>) {
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
      f(TypeTag<T>{});
    else
      throw TypeError(std::string("[") + op + "] unsupported dtype " + dtype_name(t.dtype()));
  });
}

// Where kernel tap k = ki * kw + kj reads: input offsets from an output
// position, and the output rows / columns whose input lies inside the image.
struct Tap {
  int64_t yoff, xoff;
  Range ry, rx;
};
Tap tap(int64_t k, const ConvGeometry& g) {
  const int64_t yoff = (k / g.kw) * g.dh - g.ph, xoff = (k % g.kw) * g.dw - g.pw;
  return {yoff, xoff, valid_range(yoff, g.sh, g.height, g.out_h),
          valid_range(xoff, g.sw, g.width, g.out_w)};
}

// One row of columns: the out_h * out_w values tap t reads from `plane`
// (strides sy, sx), zero where the tap falls in the padding.
template <class T>
void im2col_row(T* dst, const T* plane, int64_t sy, int64_t sx, const Tap& t,
                const ConvGeometry& g) {
  std::fill(dst, dst + t.ry.lo * g.out_w, T(0));
  for (int64_t oy = t.ry.lo; oy < t.ry.hi; ++oy) {
    T* d = dst + oy * g.out_w;
    const T* src = plane + (oy * g.sh + t.yoff) * sy;
    std::fill(d, d + t.rx.lo, T(0));
    if (g.sw == 1 && sx == 1) {
      std::memcpy(d + t.rx.lo, src + t.rx.lo + t.xoff, (t.rx.hi - t.rx.lo) * sizeof(T));
    } else {
      for (int64_t ox = t.rx.lo; ox < t.rx.hi; ++ox) d[ox] = src[(ox * g.sw + t.xoff) * sx];
    }
    std::fill(d + t.rx.hi, d + g.out_w, T(0));
  }
  std::fill(dst + t.ry.hi * g.out_w, dst + g.out_h * g.out_w, T(0));
}

// The adjoint of im2col_row: adds the row back onto a contiguous height x width plane.
template <class T>
void col2im_row(T* plane, const T* src, const Tap& t, const ConvGeometry& g) {
  for (int64_t oy = t.ry.lo; oy < t.ry.hi; ++oy) {
    T* d = plane + (oy * g.sh + t.yoff) * g.width + t.xoff;
    const T* s = src + oy * g.out_w;
    if (g.sw == 1) {
      for (int64_t ox = t.rx.lo; ox < t.rx.hi; ++ox) d[ox] += s[ox];
    } else {
      for (int64_t ox = t.rx.lo; ox < t.rx.hi; ++ox) d[ox * g.sw] += s[ox];
    }
  }
}

// Note [Flat rows]: with stride 1 and out_w == width (a 'same' convolution
// along x), output position (oy, ox) of a tap reads flat input index
// oy * width + ox + (yoff * width + xoff): the valid rows form one shifted
// block, so one memcpy / one add loop replaces out_h short ones. The few
// positions that wrap into a neighbouring row (columns outside rx) are zeroed
// afterwards (im2col) or zeroed in the scratch columns beforehand (col2im).
bool flat_rows(const ConvGeometry& g) { return g.sw == 1 && g.sh == 1 && g.out_w == g.width; }

// im2col_row for flat_rows geometry and a contiguous plane.
template <class T>
void im2col_row_flat(T* dst, const T* plane, const Tap& t, const ConvGeometry& g) {
  const int64_t W = g.width, L = g.out_h * W;
  if (t.ry.lo >= t.ry.hi || t.rx.lo >= t.rx.hi) return std::fill(dst, dst + L, T(0));
  const int64_t b = t.ry.lo * W + t.rx.lo, e = (t.ry.hi - 1) * W + t.rx.hi;
  std::fill(dst, dst + b, T(0));
  std::memcpy(dst + b, plane + b + t.yoff * W + t.xoff, (e - b) * sizeof(T));
  std::fill(dst + e, dst + L, T(0));
  for (int64_t oy = t.ry.lo; oy < t.ry.hi; ++oy) {
    std::fill(dst + oy * W, dst + oy * W + t.rx.lo, T(0));
    std::fill(dst + oy * W + t.rx.hi, dst + (oy + 1) * W, T(0));
  }
}

// col2im_row for flat_rows geometry; clobbers the wrapping entries of `src`.
template <class T>
void col2im_row_flat(T* plane, T* src, const Tap& t, const ConvGeometry& g) {
  const int64_t W = g.width;
  if (t.ry.lo >= t.ry.hi || t.rx.lo >= t.rx.hi) return;
  for (int64_t oy = t.ry.lo; oy < t.ry.hi; ++oy) {
    std::fill(src + oy * W, src + oy * W + t.rx.lo, T(0));
    std::fill(src + oy * W + t.rx.hi, src + (oy + 1) * W, T(0));
  }
  const int64_t b = t.ry.lo * W + t.rx.lo, e = (t.ry.hi - 1) * W + t.rx.hi;
  const int64_t shift = t.yoff * W + t.xoff;
  for (int64_t i = b; i < e; ++i) plane[i + shift] += src[i];
}

// cols: contiguous (channels * kh * kw, n * out_h * out_w); input: any strides.
void im2col_kernel(const Tensor& cols, const Tensor& input, const ConvGeometry& g) {
  visit_float(input, "conv", [&]<class T>(TypeTag<T>) {
    const T* in = input.data<T>();
    T* out = cols.data<T>();
    const int64_t sn = input.stride(0), sc = input.stride(1), sy = input.stride(2),
                  sx = input.stride(3);
    const int64_t L = g.out_h * g.out_w, K = g.kh * g.kw;
    const int64_t rows = g.channels * K;
    parallel_for(0, rows * g.n, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(L, 1)),
                 [&](int64_t b, int64_t e) {
                   for (int64_t i = b; i < e; ++i) {
                     const int64_t r = i / g.n, n = i % g.n;
                     im2col_row(out + (r * g.n + n) * L, in + n * sn + (r / K) * sc, sy, sx,
                                tap(r % K, g), g);
                   }
                 });
  });
}

// image: contiguous (n, channels, height, width), overwritten with the sum of
// every column entry that maps to each pixel; cols: contiguous, as in im2col.
void col2im_kernel(const Tensor& image, const Tensor& cols, const ConvGeometry& g) {
  visit_float(image, "conv", [&]<class T>(TypeTag<T>) {
    const T* col = cols.data<T>();
    T* img = image.data<T>();
    const int64_t L = g.out_h * g.out_w, K = g.kh * g.kw, HW = g.height * g.width;
    const int64_t grain = std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(K * L, 1));
    parallel_for(0, g.n * g.channels, grain, [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) {
        const int64_t n = p / g.channels, c = p % g.channels;
        T* plane = img + p * HW;
        std::fill(plane, plane + HW, T(0));
        for (int64_t k = 0; k < K; ++k) col2im_row(plane, col + (c * K + k) * g.n * L + n * L, tap(k, g), g);
      }
    });
  });
}

// ---- convolutions, one image at a time ----

using GemmKernel = void(const Tensor&, const Tensor&, const Tensor&, Scalar, Scalar);

// out[i] = beta * out[i] + a[i] @ b[i] for (B, M, K) x (B, K, N) operands.
void gemm(const Tensor& out, const Tensor& a, const Tensor& b, double beta) {
  static const dispatch::Op<GemmKernel> kernel("gemm");
  kernel(out.device(), out, a, b, beta, 1.0);
}

// A view of t's memory: `offset` elements past t's first element.
Tensor view_at(const Tensor& t, Shape sizes, Shape strides, int64_t offset) {
  return make_tensor(t.storage(), std::move(sizes), std::move(strides), t.impl()->offset + offset,
                     t.dtype());
}

// How many runs over_images splits a batch of n into: one per thread.
int64_t image_runs(int64_t n) { return std::min<int64_t>(get_num_threads(), n); }

// Calls f(run, first, last) for each run of images; a batch of one runs on the
// calling thread, where its GEMMs split themselves (Note [One thread pool]).
template <class F>
void over_images(int64_t n, const F& f) {
  const int64_t runs = image_runs(n);
  if (runs <= 1) {
    if (n > 0) f(0, 0, n);
    return;
  }
  parallel_for(0, runs, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) f(r, n * r / runs, n * (r + 1) / runs);
  });
}

// Image n's columns (groups, channels/groups * kh * kw, out_h * out_w) into `cols`.
template <class T>
void image_columns(T* cols, const Tensor& input, int64_t n, const ConvGeometry& g) {
  const T* in = input.data<T>() + n * input.stride(0);
  const int64_t sc = input.stride(1), sy = input.stride(2), sx = input.stride(3);
  const int64_t K = g.kh * g.kw, L = g.out_h * g.out_w;
  const bool flat = flat_rows(g) && sx == 1 && sy == g.width;
  for (int64_t k = 0; k < K; ++k) {
    const Tap t = tap(k, g);
    for (int64_t c = 0; c < g.channels; ++c) {
      if (flat)
        im2col_row_flat(cols + (c * K + k) * L, in + c * sc, t, g);
      else
        im2col_row(cols + (c * K + k) * L, in + c * sc, sy, sx, t, g);
    }
  }
}

// Image n of `image` (contiguous (n, channels, height, width)) as bias + the
// sum of its columns `cols` (which this clobbers, see Note [Flat rows]).
template <class T>
void image_from_columns(const Tensor& image, int64_t n, T* cols, const T* bias,
                        const ConvGeometry& g) {
  const int64_t K = g.kh * g.kw, L = g.out_h * g.out_w, HW = g.height * g.width;
  const bool flat = flat_rows(g);
  for (int64_t c = 0; c < g.channels; ++c) {
    T* plane = image.data<T>() + (n * g.channels + c) * HW;
    std::fill(plane, plane + HW, bias ? bias[c] : T(0));
  }
  for (int64_t k = 0; k < K; ++k) {
    const Tap t = tap(k, g);
    for (int64_t c = 0; c < g.channels; ++c) {
      T* plane = image.data<T>() + (n * g.channels + c) * HW;
      if (flat)
        col2im_row_flat(plane, cols + (c * K + k) * L, t, g);
      else
        col2im_row(plane, cols + (c * K + k) * L, t, g);
    }
  }
}

// out: contiguous (n, O, out_h, out_w); input (n, channels, height, width), any
// strides; weight: contiguous (O, channels/groups, kh, kw); bias: (O) or undefined.
void conv2d_kernel(const Tensor& out, const Tensor& input, const Tensor& weight,
                   const Tensor& bias, const ConvGeometry& g) {
  visit_float(input, "conv2d", [&]<class T>(TypeTag<T>) {
    const int64_t O = weight.size(0), G = g.groups, Og = O / G, Kg = weight.numel() / std::max<int64_t>(O, 1);
    const int64_t L = g.out_h * g.out_w;
    const Tensor wg = view_at(weight, {G, Og, Kg}, {Og * Kg, Kg, 1}, 0);
    const T* b = bias.defined() ? bias.data<T>() : nullptr;
    over_images(g.n, [&](int64_t, int64_t n0, int64_t n1) {
      const Tensor cols = empty({G, Kg, L}, input.dtype(), input.device());
      for (int64_t n = n0; n < n1; ++n) {
        image_columns(cols.data<T>(), input, n, g);
        T* o = out.data<T>() + n * O * L;
        if (b)
          for (int64_t c = 0; c < O; ++c) std::fill(o + c * L, o + (c + 1) * L, b[c]);
        gemm(view_at(out, {G, Og, L}, {Og * L, L, 1}, n * O * L), wg, cols, b ? 1 : 0);
      }
    });
  });
}

// The transposed convolution (the input gradient of conv2d): out (n, channels,
// height, width) contiguous, from input (n, C, out_h, out_w) contiguous and
// weight (C, channels/groups, kh, kw) contiguous; bias: (channels) or undefined.
void conv_transpose2d_kernel(const Tensor& out, const Tensor& input, const Tensor& weight,
                             const Tensor& bias, const ConvGeometry& g) {
  visit_float(input, "conv_transpose2d", [&]<class T>(TypeTag<T>) {
    const int64_t C = input.size(1), G = g.groups, Cg = C / G;
    const int64_t Kg = weight.size(1) * g.kh * g.kw;
    const int64_t L = g.out_h * g.out_w;
    const Tensor wt = view_at(weight, {G, Kg, Cg}, {Cg * Kg, 1, Kg}, 0);
    const T* b = bias.defined() ? bias.data<T>() : nullptr;
    over_images(g.n, [&](int64_t, int64_t n0, int64_t n1) {
      const Tensor cols = empty({G, Kg, L}, input.dtype(), input.device());
      for (int64_t n = n0; n < n1; ++n) {
        gemm(cols, wt, view_at(input, {G, Cg, L}, {Cg * L, L, 1}, n * C * L), 0);
        image_from_columns(out, n, cols.data<T>(), b, g);
      }
    });
  });
}

// Sum of x[0, n) in independent lanes (so the compiler vectorizes it), then in double.
template <class T>
double plane_sum(const T* x, int64_t n) {
  constexpr int64_t kLanes = 16;
  T lane[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int64_t j = 0; j < kLanes; ++j) lane[j] += x[i + j];
  double s = 0;
  for (; i < n; ++i) s += x[i];
  for (int64_t j = 0; j < kLanes; ++j) s += lane[j];
  return s;
}

// The weight gradient of conv2d, sum over images of grad_out[n] @ columns(input[n])^T,
// into contiguous grad_weight (O, channels/groups, kh, kw); with grad_bias
// defined, also the bias gradient (O). grad_out: contiguous (n, O, out_h, out_w).
void conv2d_weight_grad_kernel(const Tensor& grad_weight, const Tensor& grad_bias,
                               const Tensor& input, const Tensor& grad_out,
                               const ConvGeometry& g) {
  visit_float(input, "conv2d", [&]<class T>(TypeTag<T>) {
    const int64_t O = grad_weight.size(0), G = g.groups, Og = O / G;
    const int64_t Kg = grad_weight.numel() / std::max<int64_t>(O, 1), L = g.out_h * g.out_w;
    // Each run of images accumulates its own transposed gradient (G, Kg, Og):
    // columns @ grad_out^T is the faster GEMM orientation for these shapes (the
    // long dim L is the inner one). They are summed in a fixed order afterwards.
    const int64_t runs = std::max<int64_t>(1, image_runs(g.n));
    std::vector<Tensor> acc(runs);
    std::vector<std::vector<double>> bias_sum(runs, std::vector<double>(O, 0.0));
    for (auto& a : acc) a = zeros({G, Kg, Og}, input.dtype(), input.device());
    over_images(g.n, [&](int64_t run, int64_t n0, int64_t n1) {
      const Tensor cols = empty({G, Kg, L}, input.dtype(), input.device());
      for (int64_t n = n0; n < n1; ++n) {
        image_columns(cols.data<T>(), input, n, g);
        gemm(acc[run], cols, view_at(grad_out, {G, L, Og}, {Og * L, 1, L}, n * O * L), 1);
        if (!grad_bias.defined()) continue;
        const T* gy = grad_out.data<T>() + n * O * L;
        for (int64_t c = 0; c < O; ++c) bias_sum[run][c] += plane_sum(gy + c * L, L);
      }
    });
    T* gw = grad_weight.data<T>();
    for (int64_t gi = 0; gi < G; ++gi)
      for (int64_t o = 0; o < Og; ++o)
        for (int64_t k = 0; k < Kg; ++k) {
          T s = 0;
          for (const Tensor& a : acc) s += a.data<T>()[(gi * Kg + k) * Og + o];
          gw[(gi * Og + o) * Kg + k] = s;
        }
    if (grad_bias.defined()) {
      T* gb = grad_bias.data<T>();
      for (int64_t o = 0; o < O; ++o) {
        double s = 0;
        for (const auto& b : bias_sum) s += b[o];
        gb[o] = static_cast<T>(s);
      }
    }
  });
}

}  // namespace

KILN_REGISTER_KERNEL(im2col, CPU, im2col_kernel);
KILN_REGISTER_KERNEL(col2im, CPU, col2im_kernel);
KILN_REGISTER_KERNEL(conv2d, CPU, conv2d_kernel);
KILN_REGISTER_KERNEL(conv_transpose2d, CPU, conv_transpose2d_kernel);
KILN_REGISTER_KERNEL(conv2d_weight_grad, CPU, conv2d_weight_grad_kernel);

}  // namespace kiln::cpu
