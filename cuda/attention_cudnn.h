#pragma once
// scaled_dot_product_attention through cuDNN's fused flash attention, for the
// kernels of attention.cu, which fall back to their own tile kernels (or let the
// front end compose) where it declines.
#include "kiln/tensor.h"

namespace kiln::cuda {

// The forward of attention.cu's kernel (AttentionKernel in
// csrc/kiln/ops/attention.cpp: q (batch..., L, E), k (batch..., S, E), v
// (batch..., S, Ev) views in; out (batch..., L, Ev) and lse (B, L) float32 set).
// cuDNN reads the inputs in place where their strides allow (the heads of
// MultiheadAttention's projections are such views) and lays out out like q
// (so merging the heads back is free). Runs it and returns true, or returns
// false having done nothing where cuDNN's attention is off
// (kiln.backends.cuda.enable_cudnn_sdp, kiln.backends.cudnn.enabled), not
// loaded, or does not take the problem: float32 or float64, a mask other than
// causal, head sizes cuDNN lacks, empty tensors, a GPU older than Ampere.
// Errors while running throw.
bool cudnn_attention(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                     const Tensor& mask, bool causal, double scale);

// Its backward (AttentionBackwardKernel): gq, gk, gv (laid out like q, k, v)
// from q, k, v, out, grad_out and lse, which may come from the tile kernels'
// forward (both hold the natural logsumexp of the scaled scores).
bool cudnn_attention_backward(Tensor& gq, Tensor& gk, Tensor& gv, const Tensor& q,
                              const Tensor& k, const Tensor& v, const Tensor& out,
                              const Tensor& grad_out, const Tensor& lse, const Tensor& mask,
                              bool causal, double scale);

}  // namespace kiln::cuda
