// im2col / col2im: the data movement around the GEMM that computes convolutions.
#include "kiln/ops/conv.h"

#include <algorithm>
#include <cstring>

#include "kiln/dispatch.h"
#include "kiln/dtype_dispatch.h"
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
                     const int64_t c = r / K, ki = (r % K) / g.kw, kj = r % g.kw;
                     T* dst = out + r * g.n * L + n * L;
                     const T* plane = in + n * sn + c * sc;
                     const int64_t yoff = ki * g.dh - g.ph, xoff = kj * g.dw - g.pw;
                     const Range ry = valid_range(yoff, g.sh, g.height, g.out_h);
                     const Range rx = valid_range(xoff, g.sw, g.width, g.out_w);
                     std::fill(dst, dst + ry.lo * g.out_w, T(0));
                     for (int64_t oy = ry.lo; oy < ry.hi; ++oy) {
                       T* d = dst + oy * g.out_w;
                       const T* src = plane + (oy * g.sh + yoff) * sy;
                       std::fill(d, d + rx.lo, T(0));
                       if (g.sw == 1 && sx == 1) {
                         std::memcpy(d + rx.lo, src + rx.lo + xoff, (rx.hi - rx.lo) * sizeof(T));
                       } else {
                         for (int64_t ox = rx.lo; ox < rx.hi; ++ox)
                           d[ox] = src[(ox * g.sw + xoff) * sx];
                       }
                       std::fill(d + rx.hi, d + g.out_w, T(0));
                     }
                     std::fill(dst + ry.hi * g.out_w, dst + L, T(0));
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
        for (int64_t ki = 0; ki < g.kh; ++ki) {
          for (int64_t kj = 0; kj < g.kw; ++kj) {
            const T* src = col + ((c * g.kh + ki) * g.kw + kj) * g.n * L + n * L;
            const int64_t yoff = ki * g.dh - g.ph, xoff = kj * g.dw - g.pw;
            const Range ry = valid_range(yoff, g.sh, g.height, g.out_h);
            const Range rx = valid_range(xoff, g.sw, g.width, g.out_w);
            for (int64_t oy = ry.lo; oy < ry.hi; ++oy) {
              T* d = plane + (oy * g.sh + yoff) * g.width + xoff;
              const T* s = src + oy * g.out_w;
              for (int64_t ox = rx.lo; ox < rx.hi; ++ox) d[ox * g.sw] += s[ox];
            }
          }
        }
      }
    });
  });
}

}  // namespace

KILN_REGISTER_KERNEL(im2col, CPU, im2col_kernel);
KILN_REGISTER_KERNEL(col2im, CPU, col2im_kernel);

}  // namespace kiln::cpu
