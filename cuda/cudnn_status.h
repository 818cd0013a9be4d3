#pragma once
// What the rest of kiln._C_cuda knows of cuDNN, without its headers: whether
// it can be used, and the kiln.backends switches for it. Built with cuDNN's
// headers, cudnn_api.cpp answers (loading libcudnn.so.9 on first use);
// without them, without_cudnn.cpp does (convolutions then always run as
// im2col + cuBLAS GEMMs). Attention's part is attention_cudnn.cpp, or
// without_cudnn_attention.cpp where the cudnn-frontend headers were missing.
#include <cstdint>
#include <string>

namespace kiln::cuda {

// Why cuDNN can't be used ("" when it can): not installed, wrong major version,
// missing symbols, or this module built without cuDNN's headers.
const std::string& cudnn_error();
// cuDNN's version (91002 for 9.10.2), 0 when it can't be used.
int cudnn_version();
// How many convolution passes cuDNN has run in this process (a diagnostic: tests
// check that the cases cuDNN should take do not fall back to im2col unnoticed).
int64_t cudnn_convolutions_run();

// How many attention passes (forwards and backwards) cuDNN has run, and why it
// last declined one ("" when it has not): diagnostics for the tests.
int64_t cudnn_attentions_run();
std::string cudnn_attention_declined();

// kiln.backends.cudnn.enabled: convolutions and attention use cuDNN when it is loaded and
// this is on (the default, as in PyTorch).
bool cudnn_enabled();
void set_cudnn_enabled(bool enabled);
// kiln.backends.cudnn.deterministic: only algorithms whose results do not
// vary from run to run (off by default, as in PyTorch).
bool cudnn_deterministic();
void set_cudnn_deterministic(bool deterministic);
// kiln.backends.cuda.enable_cudnn_sdp: scaled_dot_product_attention uses cuDNN's
// fused attention where it can (on by default; cudnn.enabled must be on too).
bool cudnn_sdp_enabled();
void set_cudnn_sdp_enabled(bool enabled);

}  // namespace kiln::cuda
