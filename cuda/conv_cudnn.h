#pragma once
// Convolutions through cuDNN (cudnn_api.h) for the kernels of conv.cu, which fall
// back to im2col + cuBLAS GEMMs where cuDNN is off, not installed, or can't
// take the case.
#include "kiln/ops/conv.h"
#include "kiln/tensor.h"

namespace kiln::cuda {

// The three passes of a convolution of the image x (n, channels, height,
// width) by the filter w (O, channels/groups, kh, kw) into the grid y (n, O,
// out_h, out_w), with g's stride, padding and dilation:
enum class ConvPass {
  Forward,         // y = conv(x, w) + beta * y
  BackwardData,    // x = conv_transpose(y, w) + beta * x
  BackwardFilter,  // w = (d conv(x, w) / d w)^T y + beta * w
};

// Runs `pass` and returns true, or returns false having done nothing when
// cuDNN is disabled (kiln.backends.cudnn.enabled), not loaded, or can't take
// these sizes (asymmetric padding or output_padding, empty or over-32-bit
// tensors, tensors not 16-byte aligned). The written tensor must be contiguous; the others may have any
// strides. Errors from cuDNN itself throw, naming `op`.
bool cudnn_convolution(ConvPass pass, const Tensor& x, const Tensor& w, const Tensor& y,
                       const ConvGeometry& g, double beta, const char* op);

}  // namespace kiln::cuda
