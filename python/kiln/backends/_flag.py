"""A kiln.backends switch (allow_tf32, cudnn.enabled), kept in kiln._C_cuda when it is
loaded (so kernels read it), else here."""


class BackendFlag:
    def __init__(self, name, default):
        self._name = name
        self._value = default

    def __get__(self, obj, owner=None):
        from kiln import cuda

        return cuda._module._get_flag(self._name) if cuda._module is not None else self._value

    def __set__(self, obj, value):
        from kiln import cuda

        self._value = bool(value)
        if cuda._module is not None:
            cuda._module._set_flag(self._name, self._value)
