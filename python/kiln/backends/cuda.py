"""kiln.backends.cuda.matmul.allow_tf32, as torch.backends.cuda.

TF32 tensor cores make float32 matmuls several times faster with a 10-bit
mantissa for the products; off by default, as in PyTorch.
"""

from kiln.backends._flag import BackendFlag


class _Matmul:
    allow_tf32 = BackendFlag("matmul.allow_tf32", False)


matmul = _Matmul()


def is_built():
    from kiln import cuda

    return cuda.is_built()
