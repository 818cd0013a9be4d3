#include "kiln/ops/pool.h"

#include <array>

#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/dispatch.h"
#include "kiln/error.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/gather.h"
#include "kiln/ops/shape.h"
#include "kiln/ops/view.h"

namespace kiln {

using autograd::BackwardArgs;

namespace {

using MaxKernel = void(const Tensor&, const Tensor&, const Tensor&, const PoolGeometry&);
// grad_in, grad_out, indices, and whether the windows are disjoint (no input pixel
// in two of them, so no two outputs share an argmax).
using MaxBackKernel = void(const Tensor&, const Tensor&, const Tensor&, bool);
using AvgKernel = void(const Tensor&, const Tensor&, const PoolGeometry&);

// (N, C, H, W) as contiguous planes (N*C, H, W), and back.
Tensor planes(const Tensor& t) {
  return reshape(contiguous(t), {t.size(0) * t.size(1), t.size(2), t.size(3)});
}
Shape with_hw(const Tensor& t, int64_t h, int64_t w) { return {t.size(0), t.size(1), h, w}; }

// Each of these four is the others' backward, so every order of derivative works:
// avg_apply and avg_adjoint are adjoint linear maps; max_scatter's adjoint is a gather.
Tensor avg_adjoint(const Tensor& gy, const PoolGeometry& g, const Shape& in_shape);

Tensor avg_apply(const Tensor& x, const PoolGeometry& g) {
  Tensor out = empty(with_hw(x, g.h_start.size(), g.w_start.size()), x.dtype(), x.device());
  static const dispatch::Op<AvgKernel> kernel("avg_pool");
  {
    autograd::NoGradGuard no_grad;
    kernel(x.device(), reshape(out, {-1, out.size(2), out.size(3)}), planes(x), g);
  }
  if (autograd::needs_grad({x})) {
    const Shape in_shape = x.sizes();
    autograd::record("AvgPool2DBackward0", {x}, {out}, {}, [g, in_shape](const BackwardArgs& a) {
      return TensorList{avg_adjoint(a.grad(), g, in_shape)};
    });
  }
  return out;
}

Tensor avg_adjoint(const Tensor& gy, const PoolGeometry& g, const Shape& in_shape) {
  Tensor gx = empty(in_shape, gy.dtype(), gy.device());
  static const dispatch::Op<AvgKernel> kernel("avg_pool_backward");
  {
    autograd::NoGradGuard no_grad;
    kernel(gy.device(), reshape(gx, {-1, in_shape[2], in_shape[3]}), planes(gy), g);
  }
  if (autograd::needs_grad({gy}))
    autograd::record("AvgPool2DBackwardBackward0", {gy}, {gx}, {},
                     [g](const BackwardArgs& a) { return TensorList{avg_apply(a.grad(), g)}; });
  return gx;
}

Tensor max_scatter(const Tensor& gy, const Tensor& indices, const Shape& in_shape,
                   bool disjoint) {
  Tensor gx = empty(in_shape, gy.dtype(), gy.device());
  static const dispatch::Op<MaxBackKernel> kernel("max_pool_backward");
  {
    autograd::NoGradGuard no_grad;
    kernel(gy.device(), reshape(gx, {-1, in_shape[2], in_shape[3]}), planes(gy), planes(indices),
           disjoint);
  }
  if (autograd::needs_grad({gy})) {
    const Shape out_shape = gy.sizes();
    autograd::record("MaxPool2DWithIndicesBackwardBackward0", {gy}, {gx}, {indices},
                     [out_shape](const BackwardArgs& a) {
                       return TensorList{reshape(
                           gather(flatten(a.grad(), 2), 2, flatten(a.saved[0], 2)), out_shape)};
                     });
  }
  return gx;
}

// Whether no index of an axis of `size` lies in two windows (taps inside the input).
bool axis_disjoint(int64_t size, const std::vector<int64_t>& start,
                   const std::vector<int64_t>& len, int64_t step) {
  std::vector<bool> taken(size);
  for (size_t o = 0; o < start.size(); ++o)
    for (int64_t i = 0; i < len[o]; ++i) {
      const int64_t at = start[o] + i * step;
      if (at < 0 || at >= size) continue;
      if (taken[at]) return false;
      taken[at] = true;
    }
  return true;
}

// No input pixel in two windows (each axis disjoint; a conservative test).
bool windows_disjoint(const PoolGeometry& g) {
  return axis_disjoint(g.height, g.h_start, g.h_len, g.step_h) &&
         axis_disjoint(g.width, g.w_start, g.w_len, g.step_w);
}

std::pair<Tensor, Tensor> max_apply(const Tensor& x, const PoolGeometry& g) {
  const Shape shape = with_hw(x, g.h_start.size(), g.w_start.size());
  Tensor out = empty(shape, x.dtype(), x.device());
  Tensor indices = empty(shape, ScalarType::Int64, x.device());
  static const dispatch::Op<MaxKernel> kernel("max_pool");
  {
    autograd::NoGradGuard no_grad;
    const Shape flat = {-1, shape[2], shape[3]};
    kernel(x.device(), reshape(out, flat), reshape(indices, flat), planes(x), g);
  }
  if (autograd::needs_grad({x})) {
    const Shape in_shape = x.sizes();
    const bool disjoint = windows_disjoint(g);
    autograd::record("MaxPool2DWithIndicesBackward0", {x}, {out}, {indices},
                     [in_shape, disjoint](const BackwardArgs& a) {
                       return TensorList{max_scatter(a.grad(), a.saved[0], in_shape, disjoint)};
                     });
  }
  return {out, indices};
}

// ---- argument checks and window geometry ----

struct Pooled {
  Tensor x;  // 4-D (N, C, H, W); 1-D pools have H = 1
  int nd;
  bool batched;
};

Pooled prepare(const char* op, int nd, const Tensor& input) {
  const int64_t dim = input.dim();
  KILN_CHECK(dim == nd + 1 || dim == nd + 2, ValueError, "[", op, "] expected ", nd + 1,
             "-D (unbatched) or ", nd + 2, "-D (batched) input, got input of shape ",
             input.sizes());
  KILN_CHECK(is_floating(input.dtype()), TypeError, "[", op,
             "] expected a floating point input, got ", input.dtype());
  for (int64_t d = dim - nd; d < dim; ++d)
    KILN_CHECK(input.size(d) > 0, ValueError, "[", op,
               "] expected non-empty spatial dims, got input of shape ", input.sizes());
  Tensor x = dim == nd + 1 ? unsqueeze(input, 0) : input;
  if (nd == 1) x = unsqueeze(x, 2);
  return {x, nd, dim == nd + 2};
}

Tensor finish(const Pooled& p, const Tensor& out) {
  const Tensor r = p.nd == 1 ? squeeze(out, Shape{2}) : out;
  return p.batched ? r : squeeze(r, Shape{0});
}

// {h, w} from one value or nd values (h = `fill` for 1-D pools).
std::array<int64_t, 2> spread(const char* op, const char* name, const Shape& v, int nd, int64_t min,
                              int64_t fill) {
  KILN_CHECK(v.size() == 1 || int64_t(v.size()) == nd, ValueError, "[", op, "] expected ", name,
             " to be a single int or ", nd, " ints, got ", v);
  for (int64_t x : v)
    KILN_CHECK(x >= min, ValueError, "[", op, "] ", name, " must be ",
               min == 0 ? "non-negative" : "positive", ", got ", v);
  if (nd == 1) return {fill, v[0]};
  return {v[0], v[v.size() == 1 ? 0 : 1]};
}

struct Window {
  std::array<int64_t, 2> k, s, p, d;
};

Window window(const char* op, int nd, const Shape& kernel_size, const Shape& stride,
              const Shape& padding, const Shape& dilation) {
  Window w;
  w.k = spread(op, "kernel_size", kernel_size, nd, 1, 1);
  w.s = stride.empty() ? w.k : spread(op, "stride", stride, nd, 1, 1);
  w.p = spread(op, "padding", padding, nd, 0, 0);
  w.d = spread(op, "dilation", dilation, nd, 1, 1);
  for (int i = 0; i < 2; ++i)
    KILN_CHECK(w.p[i] * 2 <= (w.k[i] - 1) * w.d[i] + 1, ValueError, "[", op,
               "] pad should be at most half of effective kernel size, got padding=", padding,
               ", kernel_size=", kernel_size, ", dilation=", dilation);
  return w;
}

int64_t out_size(const char* op, const Tensor& input, int64_t in, int64_t k, int64_t s, int64_t p,
                 int64_t d, bool ceil_mode) {
  const int64_t span = in + 2 * p - d * (k - 1) - 1;
  KILN_CHECK(span >= 0, ValueError, "[", op, "] kernel size (", d * (k - 1) + 1,
             " with dilation) can't be greater than the padded input size (", in + 2 * p,
             "): input of shape ", input.sizes());
  int64_t out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
  if (ceil_mode && (out - 1) * s >= in + p) --out;  // last window must start inside
  return out;
}

// Sliding windows on axis `i` (0 = h, 1 = w) of a max pool (unclipped, dilated).
void max_axis(PoolGeometry& g, int i, int64_t out, const Window& w) {
  auto& start = i ? g.w_start : g.h_start;
  auto& len = i ? g.w_len : g.h_len;
  (i ? g.step_w : g.step_h) = w.d[i];
  for (int64_t o = 0; o < out; ++o) {
    start.push_back(o * w.s[i] - w.p[i]);
    len.push_back(w.k[i]);
  }
}

// Windows of an average pool, clipped to the input.
void avg_axis(PoolGeometry& g, int i, int64_t in, int64_t out, const Window& w,
              bool count_include_pad) {
  auto& start = i ? g.w_start : g.h_start;
  auto& len = i ? g.w_len : g.h_len;
  auto& div = i ? g.w_div : g.h_div;
  for (int64_t o = 0; o < out; ++o) {
    const int64_t lo = o * w.s[i] - w.p[i], hi = std::min(lo + w.k[i], in + w.p[i]);
    const int64_t clo = std::max<int64_t>(lo, 0), chi = std::min(hi, in);
    start.push_back(clo);
    len.push_back(chi - clo);
    div.push_back(double(count_include_pad ? hi - lo : chi - clo));
  }
}

// Adaptive windows: [floor(o * in / out), ceil((o + 1) * in / out)).
void adaptive_axis(PoolGeometry& g, int i, int64_t in, int64_t out) {
  auto& start = i ? g.w_start : g.h_start;
  auto& len = i ? g.w_len : g.h_len;
  auto& div = i ? g.w_div : g.h_div;
  for (int64_t o = 0; o < out; ++o) {
    const int64_t lo = o * in / out, hi = ((o + 1) * in + out - 1) / out;
    start.push_back(lo);
    len.push_back(hi - lo);
    div.push_back(double(hi - lo));
  }
}

std::pair<Tensor, Tensor> max_pool(const char* op, int nd, const Tensor& input,
                                   const Shape& kernel_size, const Shape& stride,
                                   const Shape& padding, const Shape& dilation, bool ceil_mode) {
  const Pooled p = prepare(op, nd, input);
  const Window w = window(op, nd, kernel_size, stride, padding, dilation);
  PoolGeometry g;
  g.height = p.x.size(2);
  g.width = p.x.size(3);
  for (int i = 0; i < 2; ++i)
    max_axis(g, i, out_size(op, input, p.x.size(2 + i), w.k[i], w.s[i], w.p[i], w.d[i], ceil_mode),
             w);
  auto [out, indices] = max_apply(p.x, g);
  return {finish(p, out), finish(p, indices)};
}

Tensor avg_pool(const char* op, int nd, const Tensor& input, const Shape& kernel_size,
                const Shape& stride, const Shape& padding, bool ceil_mode, bool count_include_pad,
                std::optional<int64_t> divisor_override) {
  const Pooled p = prepare(op, nd, input);
  const Window w = window(op, nd, kernel_size, stride, padding, {1});
  KILN_CHECK(!divisor_override || *divisor_override != 0, ValueError, "[", op,
             "] divisor_override must not be zero");
  PoolGeometry g;
  g.height = p.x.size(2);
  g.width = p.x.size(3);
  g.divisor = divisor_override ? double(*divisor_override) : 0;
  for (int i = 0; i < 2; ++i) {
    const int64_t in = p.x.size(2 + i);
    avg_axis(g, i, in, out_size(op, input, in, w.k[i], w.s[i], w.p[i], 1, ceil_mode), w,
             count_include_pad);
  }
  return finish(p, avg_apply(p.x, g));
}

PoolGeometry adaptive(const char* op, const Pooled& p, const Shape& output_size) {
  KILN_CHECK(int64_t(output_size.size()) == p.nd || output_size.size() == 1, ValueError, "[", op,
             "] expected output_size of ", p.nd, " ints, got ", output_size);
  PoolGeometry g;
  g.height = p.x.size(2);
  g.width = p.x.size(3);
  for (int i = 0; i < 2; ++i) {
    const int64_t in = p.x.size(2 + i);
    int64_t out = p.nd == 1 && i == 0 ? 1 : output_size[output_size.size() == 1 ? 0 : i];
    if (out == -1) out = in;
    KILN_CHECK(out > 0, ValueError, "[", op, "] output_size must be positive, got ", output_size);
    adaptive_axis(g, i, in, out);
  }
  return g;
}

}  // namespace

Tensor max_pool1d(const Tensor& input, const Shape& kernel_size, const Shape& stride,
                  const Shape& padding, const Shape& dilation, bool ceil_mode) {
  return max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode).first;
}
Tensor max_pool2d(const Tensor& input, const Shape& kernel_size, const Shape& stride,
                  const Shape& padding, const Shape& dilation, bool ceil_mode) {
  return max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode).first;
}
std::pair<Tensor, Tensor> max_pool1d_with_indices(const Tensor& input, const Shape& kernel_size,
                                                  const Shape& stride, const Shape& padding,
                                                  const Shape& dilation, bool ceil_mode) {
  return max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode);
}
std::pair<Tensor, Tensor> max_pool2d_with_indices(const Tensor& input, const Shape& kernel_size,
                                                  const Shape& stride, const Shape& padding,
                                                  const Shape& dilation, bool ceil_mode) {
  return max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode);
}
Tensor avg_pool1d(const Tensor& input, const Shape& kernel_size, const Shape& stride,
                  const Shape& padding, bool ceil_mode, bool count_include_pad) {
  return avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode,
                  count_include_pad, std::nullopt);
}
Tensor avg_pool2d(const Tensor& input, const Shape& kernel_size, const Shape& stride,
                  const Shape& padding, bool ceil_mode, bool count_include_pad,
                  std::optional<int64_t> divisor_override) {
  return avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode,
                  count_include_pad, divisor_override);
}
Tensor adaptive_avg_pool1d(const Tensor& input, const Shape& output_size) {
  const Pooled p = prepare("adaptive_avg_pool1d", 1, input);
  return finish(p, avg_apply(p.x, adaptive("adaptive_avg_pool1d", p, output_size)));
}
Tensor adaptive_avg_pool2d(const Tensor& input, const Shape& output_size) {
  const Pooled p = prepare("adaptive_avg_pool2d", 2, input);
  return finish(p, avg_apply(p.x, adaptive("adaptive_avg_pool2d", p, output_size)));
}
std::pair<Tensor, Tensor> adaptive_max_pool1d(const Tensor& input, const Shape& output_size) {
  const Pooled p = prepare("adaptive_max_pool1d", 1, input);
  auto [out, indices] = max_apply(p.x, adaptive("adaptive_max_pool1d", p, output_size));
  return {finish(p, out), finish(p, indices)};
}
std::pair<Tensor, Tensor> adaptive_max_pool2d(const Tensor& input, const Shape& output_size) {
  const Pooled p = prepare("adaptive_max_pool2d", 2, input);
  auto [out, indices] = max_apply(p.x, adaptive("adaptive_max_pool2d", p, output_size));
  return {finish(p, out), finish(p, indices)};
}

}  // namespace kiln
