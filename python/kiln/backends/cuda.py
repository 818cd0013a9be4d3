"""kiln.backends.cuda.matmul.allow_tf32, as torch.backends.cuda.

TF32 tensor cores make float32 matmuls several times faster with a 10-bit
mantissa for the products; off by default, as in PyTorch.
"""


class _Matmul:
    _allow_tf32 = False

    @property
    def allow_tf32(self):
        from kiln import cuda

        return cuda._module._get_allow_tf32() if cuda._module is not None else self._allow_tf32

    @allow_tf32.setter
    def allow_tf32(self, value):
        from kiln import cuda

        type(self)._allow_tf32 = bool(value)
        if cuda._module is not None:
            cuda._module._set_allow_tf32(bool(value))


matmul = _Matmul()


def is_built():
    from kiln import cuda

    return cuda.is_built()
