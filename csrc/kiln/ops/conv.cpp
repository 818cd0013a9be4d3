#include "kiln/ops/conv.h"

#include "kiln/autocast.h"
#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/dispatch.h"
#include "kiln/error.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/promotion.h"
#include "kiln/ops/reduce.h"
#include "kiln/ops/view.h"

namespace kiln {

using autograd::BackwardArgs;

namespace {

using ColsKernel = void(const Tensor&, const Tensor&, const ConvGeometry&);
using ConvKernel = void(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                        const ConvGeometry&);

int64_t conv_out_size(int64_t in, int64_t k, const ConvArgs& a, int d) {
  if (a.transposed)
    return (in - 1) * a.stride[d] - 2 * a.pad[d] + a.dil[d] * (k - 1) + a.extra[d] + 1;
  const int64_t span = in + 2 * a.pad[d] + a.extra[d] - a.dil[d] * (k - 1) - 1;
  return span < 0 ? 0 : span / a.stride[d] + 1;
}

ConvGeometry geometry(int64_t n, int64_t channels, int64_t groups, const Shape& image,
                      const Shape& grid, const Shape& kernel, const ConvArgs& a) {
  return {n,         channels,    groups,      image[0], image[1], grid[0],  grid[1], kernel[0],
          kernel[1], a.stride[0], a.stride[1], a.pad[0], a.pad[1], a.dil[0], a.dil[1]};
}

Tensor contiguous_or_undefined(const Tensor& t) { return t.defined() ? contiguous(t) : t; }

// x (N, C, H, W) * w (O, C/G, kh, kw), by the conv2d kernel (im2col + GEMM per image).
Tensor conv_forward(const Tensor& x, const Tensor& w, const Tensor& b, const ConvArgs& a,
                    const Shape& out_hw) {
  Tensor out = empty({x.size(0), w.size(0), out_hw[0], out_hw[1]}, x.dtype(), x.device());
  static const dispatch::Op<ConvKernel> kernel("conv2d");
  kernel(x.device(), out, x, contiguous(w), contiguous_or_undefined(b),
         geometry(x.size(0), x.size(1), a.groups, {x.size(2), x.size(3)}, out_hw,
                  {w.size(2), w.size(3)}, a));
  return out;
}

// x (N, C, H, W) with w (C, O/G, kh, kw), by the conv_transpose2d kernel: a GEMM
// per image gives each input pixel's contribution to a kh x kw patch; col2im sums them.
Tensor conv_transpose_forward(const Tensor& x, const Tensor& w, const Tensor& b, const ConvArgs& a,
                              const Shape& out_hw) {
  const int64_t O = w.size(1) * a.groups;
  Tensor out = empty({x.size(0), O, out_hw[0], out_hw[1]}, x.dtype(), x.device());
  static const dispatch::Op<ConvKernel> kernel("conv_transpose2d");
  kernel(x.device(), out, contiguous(x), contiguous(w), contiguous_or_undefined(b),
         geometry(x.size(0), O, a.groups, out_hw, {x.size(2), x.size(3)}, {w.size(2), w.size(3)},
                  a));
  return out;
}

bool is_half(ScalarType t) { return t == ScalarType::Float16 || t == ScalarType::BFloat16; }

// The dtype the convolution kernels compute in: the CPU's take float32 and
// float64 (16-bit floats go through float32); CUDA's also take 16-bit floats
// (cuBLAS accumulates in float).
ScalarType compute_dtype(ScalarType dt, Device device) {
  return is_half(dt) && device.is_cpu() ? ScalarType::Float32 : dt;
}

// The weight gradient (and, with `gb`, the bias gradient) by the conv2d_weight_grad
// kernel: the sum over images of gy[n] @ im2col(x[n])^T. Not differentiable.
Tensor conv_weight_grad_gemm(const Tensor& x_in, const Tensor& gy_in, const Shape& wshape,
                             const ConvArgs& a, Tensor* gb = nullptr) {
  const ScalarType dt = x_in.dtype(), ct = compute_dtype(dt, x_in.device());
  const Tensor x = to_dtype(x_in, ct), gy = contiguous(to_dtype(gy_in, ct));
  Tensor gw = empty(wshape, ct, x.device());
  Tensor gbias = gb ? empty({gy.size(1)}, ct, x.device()) : Tensor();
  static const dispatch::Op<void(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                 const ConvGeometry&)>
      kernel("conv2d_weight_grad");
  kernel(x.device(), gw, gbias, x, gy,
         geometry(x.size(0), x.size(1), a.groups, {x.size(2), x.size(3)},
                  {gy.size(2), gy.size(3)}, {wshape[2], wshape[3]}, a));
  if (gb) *gb = to_dtype(gbias, dt);
  return to_dtype(gw, dt);
}

// d(loss)/d(weight) of a (non-transposed) convolution of `x` whose output
// gradient is `gy`. Differentiable form (for double backward): a convolution
// of x's channels by gy's, with stride and dilation swapped; the result can
// overhang the kernel by a few taps.
Tensor conv_weight_grad(const Tensor& x, const Tensor& gy, const Shape& wshape, const ConvArgs& a) {
  if (!autograd::is_grad_enabled()) return conv_weight_grad_gemm(x, gy, wshape, a);
  const int64_t N = x.size(0), C = x.size(1), O = gy.size(1), G = a.groups;
  const Tensor xs =
      reshape(permute(reshape(x, {N, G, C / G, x.size(2), x.size(3)}), {2, 1, 0, 3, 4}),
              {C / G, G * N, x.size(2), x.size(3)});
  const Tensor gs =
      reshape(permute(reshape(gy, {N, G, O / G, gy.size(2), gy.size(3)}), {1, 2, 0, 3, 4}),
              {O, N, gy.size(2), gy.size(3)});
  ConvArgs wa = a;
  for (int d = 0; d < 2; ++d) std::swap(wa.stride[d], wa.dil[d]);
  const Tensor r = convolution(xs, gs, Tensor(), wa);
  return transpose(slice(slice(r, 2, 0, wshape[2]), 3, 0, wshape[3]), 0, 1);
}

TensorList conv_backward(const BackwardArgs& g, const ConvArgs& a) {
  const Tensor& gy = g.grad();
  const Tensor &x = g.saved[0], &w = g.saved[1];
  ConvArgs back = a;
  back.transposed = !a.transposed;
  Tensor gx, gw, gb;
  if (a.transposed) {
    // y = conv_transpose(x, w) is the input gradient of conv(y', w); undo it with that conv.
    for (int d = 0; d < 2; ++d) back.extra[d] = -a.extra[d];
    if (g.needs(0)) gx = convolution(gy, w, Tensor(), back);
    if (g.needs(1)) gw = conv_weight_grad(gy, x, w.sizes(), back);
  } else {
    for (int d = 0; d < 2; ++d) {
      ConvArgs t = back;
      t.extra[d] = 0;
      back.extra[d] = x.size(2 + d) - conv_out_size(gy.size(2 + d), w.size(2 + d), t, d);
    }
    if (g.needs(0)) gx = convolution(gy, w, Tensor(), back);
    // The weight-gradient kernel also sums gy for the bias (one pass less).
    if (g.needs(1) && !autograd::is_grad_enabled())
      gw = conv_weight_grad_gemm(x, gy, w.sizes(), a, g.needs(2) ? &gb : nullptr);
    else if (g.needs(1))
      gw = conv_weight_grad(x, gy, w.sizes(), a);
  }
  if (g.needs(2) && !gb.defined()) gb = sum(gy, {0, 2, 3});
  return {gx, gw, gb};
}

}  // namespace

Tensor convolution(const Tensor& input, const Tensor& weight, const Tensor& bias,
                   const ConvArgs& args) {
  KILN_AUTOCAST(kLowerPrecision, convolution, input, weight, bias, args);
  const Shape out_hw = {conv_out_size(input.size(2), weight.size(2), args, 0),
                        conv_out_size(input.size(3), weight.size(3), args, 1)};
  KILN_CHECK(out_hw[0] > 0 && out_hw[1] > 0, ValueError, "[convolution] output size ", out_hw,
             " is too small (input ", input.sizes(), ", weight ", weight.sizes(), ")");
  Tensor out;
  {
    autograd::NoGradGuard no_grad;
    const ScalarType dt = input.dtype();
    const ScalarType ct = compute_dtype(dt, input.device());
    const Tensor x = to_dtype(input, ct), w = to_dtype(weight, ct);
    const Tensor b = bias.defined() ? to_dtype(bias, ct) : Tensor();
    out = args.transposed ? conv_transpose_forward(x, w, b, args, out_hw)
                          : conv_forward(x, w, b, args, out_hw);
    if (ct != dt) out = to_dtype(out, dt);
  }
  if (autograd::needs_grad({input, weight, bias}))
    autograd::record(args.transposed ? "ConvolutionBackward1" : "ConvolutionBackward0",
                     {input, weight, bias}, {out}, {input, weight},
                     [args](const BackwardArgs& g) { return conv_backward(g, args); });
  return out;
}

// ---- public front ends: argument checks, then `convolution` on 4-D tensors ----

namespace {

// One value per spatial dim from `v` (one value or `nd`), for dims [2 - nd, 2).
void spread(const char* op, const char* name, const Shape& v, int nd, int64_t min, int64_t* dst,
            int64_t fill) {
  KILN_CHECK(v.size() == 1 || int64_t(v.size()) == nd, ValueError, "[", op, "] expected ", name,
             " to be a single int or ", nd, " ints, got ", v);
  for (int64_t x : v)
    KILN_CHECK(x >= min, ValueError, "[", op, "] ", name, " must be ",
               min == 0 ? "non-negative" : "positive", ", got ", v);
  for (int d = 0; d < 2; ++d) dst[d] = d < 2 - nd ? fill : v[v.size() == 1 ? 0 : d - (2 - nd)];
}

struct Prepared {
  Tensor x, w;
  bool batched;
};

// Checks shared by convs and transposed convs; returns 4-D views of input and weight.
Prepared prepare(const char* op, int nd, const Tensor& input, const Tensor& weight,
                 const Tensor& bias, int64_t groups, bool transposed) {
  check_same_device({input, weight}, op);
  const int64_t dim = input.dim();
  KILN_CHECK(dim == nd + 1 || dim == nd + 2, ValueError, "[", op, "] expected ", nd + 1,
             "-D (unbatched) or ", nd + 2, "-D (batched) input, got input of shape ",
             input.sizes());
  KILN_CHECK(weight.dim() == nd + 2, ValueError, "[", op, "] expected a ", nd + 2,
             "-D weight, got weight of shape ", weight.sizes());
  KILN_CHECK(is_floating(input.dtype()), TypeError, "[", op,
             "] expected a floating point input, got ", input.dtype());
  KILN_CHECK(input.dtype() == weight.dtype(), TypeError, "[", op,
             "] expected input and weight to have the same dtype, got ", input.dtype(), " and ",
             weight.dtype());
  KILN_CHECK(groups > 0, ValueError, "[", op, "] groups must be positive, got ", groups);
  KILN_CHECK(weight.size(0) > 0 && (!transposed || weight.size(1) > 0), ValueError, "[", op,
             "] expected a weight with at least one ", transposed ? "input and output" : "output",
             " channel, got weight of shape ", weight.sizes());
  const Tensor x = dim == nd + 1 ? unsqueeze(input, 0) : input;
  const int64_t in_ch = transposed ? weight.size(0) : weight.size(1) * groups;
  const int64_t div_ch = weight.size(0);
  const int64_t out_ch = transposed ? weight.size(1) * groups : weight.size(0);
  KILN_CHECK(div_ch % groups == 0, ValueError, "[", op, "] ",
             transposed ? "in_channels" : "out_channels", " (", div_ch,
             ") must be divisible by groups (", groups, "), weight ", weight.sizes());
  KILN_CHECK(x.size(1) == in_ch, ValueError, "[", op, "] expected input with ", in_ch,
             " channels (weight ", weight.sizes(), ", groups=", groups, "), got input of shape ",
             input.sizes());
  if (bias.defined()) {
    check_same_device({input, bias}, op);
    KILN_CHECK(bias.dtype() == input.dtype(), TypeError, "[", op, "] expected bias to have dtype ",
               input.dtype(), ", got ", bias.dtype());
    KILN_CHECK(bias.dim() == 1 && bias.size(0) == out_ch, ValueError, "[", op,
               "] expected bias of shape [", out_ch, "], got ", bias.sizes());
  }
  if (nd == 1) return {unsqueeze(x, 2), unsqueeze(weight, 2), dim == nd + 2};
  return {x, weight, dim == nd + 2};
}

Tensor finish(const Tensor& out, int nd, bool batched) {
  const Tensor r = nd == 1 ? squeeze(out, Shape{2}) : out;
  return batched ? r : squeeze(r, Shape{0});
}

Tensor conv_nd(const char* op, int nd, const Tensor& input, const Tensor& weight,
               const Tensor& bias, const Shape& stride, const Shape* padding,
               const std::string& pad_mode, const Shape& dilation, int64_t groups) {
  const Prepared p = prepare(op, nd, input, weight, bias, groups, false);
  ConvArgs a;
  a.groups = groups;
  spread(op, "stride", stride, nd, 1, a.stride, 1);
  spread(op, "dilation", dilation, nd, 1, a.dil, 1);
  if (padding) {
    spread(op, "padding", *padding, nd, 0, a.pad, 0);
  } else if (pad_mode == "same") {
    for (int d = 0; d < 2; ++d) {
      KILN_CHECK(a.stride[d] == 1, ValueError, "[", op,
                 "] padding='same' is not supported for strided convolutions (stride=", stride,
                 ")");
      const int64_t total = a.dil[d] * (p.w.size(2 + d) - 1);
      a.pad[d] = total / 2;
      a.extra[d] = total - 2 * a.pad[d];
    }
  } else {
    KILN_CHECK(pad_mode == "valid", ValueError, "[", op,
               "] padding must be 'same', 'valid' or ints, got '", pad_mode, "'");
  }
  for (int d = 2 - nd; d < 2; ++d) {
    const int64_t padded = p.x.size(2 + d) + 2 * a.pad[d] + a.extra[d];
    const int64_t span = a.dil[d] * (p.w.size(2 + d) - 1) + 1;
    KILN_CHECK(padded >= span, ValueError, "[", op, "] kernel size (", span,
               " with dilation) can't be greater than the padded input size (", padded, "): input ",
               input.sizes(), ", weight ", weight.sizes());
  }
  return finish(convolution(p.x, p.w, bias, a), nd, p.batched);
}

Tensor conv_transpose_nd(const char* op, int nd, const Tensor& input, const Tensor& weight,
                         const Tensor& bias, const Shape& stride, const Shape& padding,
                         const Shape& output_padding, int64_t groups, const Shape& dilation) {
  const Prepared p = prepare(op, nd, input, weight, bias, groups, true);
  ConvArgs a;
  a.groups = groups;
  a.transposed = true;
  spread(op, "stride", stride, nd, 1, a.stride, 1);
  spread(op, "dilation", dilation, nd, 1, a.dil, 1);
  spread(op, "padding", padding, nd, 0, a.pad, 0);
  spread(op, "output_padding", output_padding, nd, 0, a.extra, 0);
  for (int d = 2 - nd; d < 2; ++d) {
    KILN_CHECK(a.extra[d] < std::max(a.stride[d], a.dil[d]), ValueError, "[", op,
               "] output_padding must be smaller than either stride or dilation, got "
               "output_padding=",
               output_padding, ", stride=", stride, ", dilation=", dilation);
    const int64_t size = (p.x.size(2 + d) - 1) * a.stride[d] - 2 * a.pad[d] +
                         a.dil[d] * (p.w.size(2 + d) - 1) + a.extra[d] + 1;
    KILN_CHECK(size > 0, ValueError, "[", op, "] output size would be ", size, " (input ",
               input.sizes(), ", weight ", weight.sizes(), ", padding=", padding, "): too small");
  }
  return finish(convolution(p.x, p.w, bias, a), nd, p.batched);
}

}  // namespace

Tensor conv1d(const Tensor& input, const Tensor& weight, const Tensor& bias, const Shape& stride,
              const Shape& padding, const Shape& dilation, int64_t groups) {
  KILN_AUTOCAST(kLowerPrecision, conv1d, input, weight, bias, stride, padding, dilation, groups);
  return conv_nd("conv1d", 1, input, weight, bias, stride, &padding, "", dilation, groups);
}
Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias, const Shape& stride,
              const Shape& padding, const Shape& dilation, int64_t groups) {
  KILN_AUTOCAST(kLowerPrecision, conv2d, input, weight, bias, stride, padding, dilation, groups);
  return conv_nd("conv2d", 2, input, weight, bias, stride, &padding, "", dilation, groups);
}
Tensor conv1d(const Tensor& input, const Tensor& weight, const Tensor& bias, const Shape& stride,
              const std::string& padding, const Shape& dilation, int64_t groups) {
  KILN_AUTOCAST(kLowerPrecision, conv1d, input, weight, bias, stride, padding, dilation, groups);
  return conv_nd("conv1d", 1, input, weight, bias, stride, nullptr, padding, dilation, groups);
}
Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias, const Shape& stride,
              const std::string& padding, const Shape& dilation, int64_t groups) {
  KILN_AUTOCAST(kLowerPrecision, conv2d, input, weight, bias, stride, padding, dilation, groups);
  return conv_nd("conv2d", 2, input, weight, bias, stride, nullptr, padding, dilation, groups);
}
Tensor conv_transpose1d(const Tensor& input, const Tensor& weight, const Tensor& bias,
                        const Shape& stride, const Shape& padding, const Shape& output_padding,
                        int64_t groups, const Shape& dilation) {
  KILN_AUTOCAST(kLowerPrecision, conv_transpose1d, input, weight, bias, stride, padding,
                output_padding, groups, dilation);
  return conv_transpose_nd("conv_transpose1d", 1, input, weight, bias, stride, padding,
                           output_padding, groups, dilation);
}
Tensor conv_transpose2d(const Tensor& input, const Tensor& weight, const Tensor& bias,
                        const Shape& stride, const Shape& padding, const Shape& output_padding,
                        int64_t groups, const Shape& dilation) {
  KILN_AUTOCAST(kLowerPrecision, conv_transpose2d, input, weight, bias, stride, padding,
                output_padding, groups, dilation);
  return conv_transpose_nd("conv_transpose2d", 2, input, weight, bias, stride, padding,
                           output_padding, groups, dilation);
}

// ---- unfold / fold ----

namespace {

struct Patches {
  ConvArgs a;
  int64_t kh, kw;
};

Patches patches(const char* op, const Shape& kernel_size, const Shape& dilation,
                const Shape& padding, const Shape& stride) {
  Patches p;
  int64_t k[2];
  spread(op, "kernel_size", kernel_size, 2, 1, k, 1);
  spread(op, "dilation", dilation, 2, 1, p.a.dil, 1);
  spread(op, "padding", padding, 2, 0, p.a.pad, 0);
  spread(op, "stride", stride, 2, 1, p.a.stride, 1);
  p.kh = k[0];
  p.kw = k[1];
  return p;
}

Shape patch_grid(const char* op, const Patches& p, int64_t h, int64_t w) {
  const Shape grid = {conv_out_size(h, p.kh, p.a, 0), conv_out_size(w, p.kw, p.a, 1)};
  KILN_CHECK(grid[0] > 0 && grid[1] > 0, ValueError, "[", op, "] kernel [", p.kh, ", ", p.kw,
             "] with the given dilation doesn't fit the padded image of size [", h + 2 * p.a.pad[0],
             ", ", w + 2 * p.a.pad[1], "]");
  return grid;
}

Tensor fold_apply(const Tensor& cols, const Shape& image_hw, const Patches& p);

// x: 4-D; result (N, C*kh*kw, L).
Tensor unfold_apply(const Tensor& x, const Patches& p) {
  const int64_t N = x.size(0), C = x.size(1), K = C * p.kh * p.kw;
  const Shape grid = patch_grid("unfold", p, x.size(2), x.size(3));
  const int64_t L = grid[0] * grid[1];
  Tensor out;
  {
    autograd::NoGradGuard no_grad;
    const ScalarType ct = is_half(x.dtype()) ? ScalarType::Float32 : x.dtype();
    Tensor cols = empty({1, K, N * L}, ct, x.device());
    static const dispatch::Op<ColsKernel> im2col("im2col");
    im2col(x.device(), cols, to_dtype(x, ct),
           geometry(N, C, 1, {x.size(2), x.size(3)}, grid, {p.kh, p.kw}, p.a));
    out = to_dtype(contiguous(permute(reshape(cols, {K, N, L}), {1, 0, 2})), x.dtype());
  }
  if (autograd::needs_grad({x})) {
    const Shape hw = {x.size(2), x.size(3)};
    autograd::record("Im2ColBackward0", {x}, {out}, {}, [p, hw](const BackwardArgs& g) {
      return TensorList{fold_apply(g.grad(), hw, p)};
    });
  }
  return out;
}

// cols: 3-D (N, C*kh*kw, L) with L matching image_hw; result (N, C, H, W).
Tensor fold_apply(const Tensor& cols, const Shape& image_hw, const Patches& p) {
  const int64_t N = cols.size(0), K = cols.size(1), L = cols.size(2);
  const int64_t C = K / (p.kh * p.kw);
  const Shape grid = patch_grid("fold", p, image_hw[0], image_hw[1]);
  Tensor out;
  {
    autograd::NoGradGuard no_grad;
    const ScalarType ct = is_half(cols.dtype()) ? ScalarType::Float32 : cols.dtype();
    const Tensor c = contiguous(permute(to_dtype(cols, ct), {1, 0, 2}));
    out = empty({N, C, image_hw[0], image_hw[1]}, ct, cols.device());
    static const dispatch::Op<ColsKernel> col2im("col2im");
    col2im(cols.device(), out, reshape(c, {1, K, N * L}),
           geometry(N, C, 1, image_hw, grid, {p.kh, p.kw}, p.a));
    out = to_dtype(out, cols.dtype());
  }
  if (autograd::needs_grad({cols}))
    autograd::record("Col2ImBackward0", {cols}, {out}, {},
                     [p](const BackwardArgs& g) { return TensorList{unfold_apply(g.grad(), p)}; });
  return out;
}

}  // namespace

Tensor unfold(const Tensor& input, const Shape& kernel_size, const Shape& dilation,
              const Shape& padding, const Shape& stride) {
  KILN_CHECK(input.dim() == 3 || input.dim() == 4, ValueError,
             "[unfold] expected 3-D (unbatched) or 4-D (batched) input, got input of shape ",
             input.sizes());
  KILN_CHECK(is_floating(input.dtype()), TypeError,
             "[unfold] expected a floating point input, got ", input.dtype());
  const Patches p = patches("unfold", kernel_size, dilation, padding, stride);
  if (input.dim() == 3) return squeeze(unfold_apply(unsqueeze(input, 0), p), Shape{0});
  return unfold_apply(input, p);
}

Tensor fold(const Tensor& input, const Shape& output_size, const Shape& kernel_size,
            const Shape& dilation, const Shape& padding, const Shape& stride) {
  KILN_CHECK(input.dim() == 2 || input.dim() == 3, ValueError,
             "[fold] expected 2-D (unbatched) or 3-D (batched) input, got input of shape ",
             input.sizes());
  KILN_CHECK(is_floating(input.dtype()), TypeError, "[fold] expected a floating point input, got ",
             input.dtype());
  const Patches p = patches("fold", kernel_size, dilation, padding, stride);
  int64_t hw[2];
  spread("fold", "output_size", output_size, 2, 1, hw, 1);
  const Tensor x = input.dim() == 2 ? unsqueeze(input, 0) : input;
  KILN_CHECK(x.size(1) % (p.kh * p.kw) == 0, ValueError,
             "[fold] expected size of input's "
             "dimension 1 to be divisible by the product of kernel_size (",
             p.kh * p.kw, "), got input of shape ", input.sizes());
  const Shape grid = patch_grid("fold", p, hw[0], hw[1]);
  KILN_CHECK(x.size(2) == grid[0] * grid[1], ValueError,
             "[fold] expected input's dimension 2 "
             "to match the number of sliding blocks (",
             grid[0] * grid[1], " for output_size ", output_size, "), got input of shape ",
             input.sizes());
  const Tensor out = fold_apply(x, {hw[0], hw[1]}, p);
  return input.dim() == 2 ? squeeze(out, Shape{0}) : out;
}

}  // namespace kiln
