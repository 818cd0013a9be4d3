#pragma once
#include <string>

#include "kiln/tensor.h"

namespace kiln {

// Convolutions as in torch.nn.functional. Spatial arguments (stride, padding,
// dilation, output_padding) hold one value per spatial dim or one for all.
// `bias` may be undefined. float32/float64; float16/bfloat16 compute in float32
// on the CPU and in their own dtype (float accumulation) on CUDA.
KILN_API Tensor conv1d(const Tensor& input, const Tensor& weight, const Tensor& bias = Tensor(),
                       const Shape& stride = {1}, const Shape& padding = {0},
                       const Shape& dilation = {1}, int64_t groups = 1);
KILN_API Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias = Tensor(),
                       const Shape& stride = {1}, const Shape& padding = {0},
                       const Shape& dilation = {1}, int64_t groups = 1);
// padding "same" (stride 1 only) or "valid".
KILN_API Tensor conv1d(const Tensor& input, const Tensor& weight, const Tensor& bias,
                       const Shape& stride, const std::string& padding, const Shape& dilation,
                       int64_t groups);
KILN_API Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias,
                       const Shape& stride, const std::string& padding, const Shape& dilation,
                       int64_t groups);
// weight: (in_channels, out_channels / groups, k...).
KILN_API Tensor conv_transpose1d(const Tensor& input, const Tensor& weight,
                                 const Tensor& bias = Tensor(), const Shape& stride = {1},
                                 const Shape& padding = {0}, const Shape& output_padding = {0},
                                 int64_t groups = 1, const Shape& dilation = {1});
KILN_API Tensor conv_transpose2d(const Tensor& input, const Tensor& weight,
                                 const Tensor& bias = Tensor(), const Shape& stride = {1},
                                 const Shape& padding = {0}, const Shape& output_padding = {0},
                                 int64_t groups = 1, const Shape& dilation = {1});

// torch.nn.functional.unfold: sliding kh x kw patches of (N, C, H, W) (or
// unbatched (C, H, W)) as columns (N, C*kh*kw, L); fold sums columns back
// into an image of output_size. Each is the other's adjoint (and backward).
KILN_API Tensor unfold(const Tensor& input, const Shape& kernel_size, const Shape& dilation = {1},
                       const Shape& padding = {0}, const Shape& stride = {1});
KILN_API Tensor fold(const Tensor& input, const Shape& output_size, const Shape& kernel_size,
                     const Shape& dilation = {1}, const Shape& padding = {0},
                     const Shape& stride = {1});

// The one differentiable op behind all of the above: 4-D input (N, C, H, W),
// already checked. Per spatial dim, the output size is
//   (H + 2*pad + extra - dil*(k-1) - 1) / stride + 1           (not transposed)
//   (H - 1)*stride - 2*pad + dil*(k-1) + extra + 1             (transposed)
// so `extra` is output_padding for transposed convs and extra padding at the
// end of the input otherwise ('same' with an even kernel); backward formulas
// use negative values to crop.
struct ConvArgs {
  int64_t stride[2] = {1, 1}, pad[2] = {0, 0}, dil[2] = {1, 1}, extra[2] = {0, 0};
  int64_t groups = 1;
  bool transposed = false;
};
KILN_API Tensor convolution(const Tensor& input, const Tensor& weight, const Tensor& bias,
                            const ConvArgs& args);

// What the convolution kernels see: an image of `channels` planes in `groups`
// groups, (n, channels, height, width), and a grid of out_h x out_w kernel
// positions. im2col/col2im (unfold/fold) lay columns out as (groups,
// channels/groups * kh * kw, n * out_h * out_w); conv2d, conv_transpose2d and
// conv2d_weight_grad work one image at a time (per-image columns and GEMMs),
// with the image being the convolution's input (conv2d, weight grad) or its
// output (conv_transpose2d).
struct ConvGeometry {
  int64_t n, channels, groups, height, width, out_h, out_w;
  int64_t kh, kw, sh, sw, ph, pw, dh, dw;
};

}  // namespace kiln
