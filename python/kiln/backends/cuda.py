"""kiln.backends.cuda, as torch.backends.cuda.

`matmul.allow_tf32`: TF32 tensor cores make float32 matmuls several times faster
with a 10-bit mantissa for the products; off by default, as in PyTorch.

`enable_cudnn_sdp(bool)` / `cudnn_sdp_enabled()`: whether float16 and bfloat16
`scaled_dot_product_attention` without a mask (or causal) runs on cuDNN's fused
flash attention, where it is installed and `kiln.backends.cudnn.enabled` (on by
default). Elsewhere kiln's own fused kernels run it, or for large problems the
composed matmul-softmax-matmul.
"""

from kiln.backends._flag import BackendFlag


class _Matmul:
    allow_tf32 = BackendFlag("matmul.allow_tf32", False)


matmul = _Matmul()


class _Sdp:
    cudnn = BackendFlag("cudnn_sdp", True)


_sdp = _Sdp()


def enable_cudnn_sdp(enabled):
    """Turns cuDNN's fused attention on or off for scaled_dot_product_attention."""
    _sdp.cudnn = enabled


def cudnn_sdp_enabled():
    return _sdp.cudnn


def is_built():
    from kiln import cuda

    return cuda.is_built()
