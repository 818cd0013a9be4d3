"""An allow_tf32 switch kept in kiln._C_cuda when it is loaded (so kernels see it), else here."""


class Tf32Switch:
    def __init__(self, which, default):
        self._which = which
        self._value = default

    def __get__(self, obj, owner=None):
        from kiln import cuda

        return cuda._module._get_allow_tf32(self._which) if cuda._module is not None else self._value

    def __set__(self, obj, value):
        from kiln import cuda

        self._value = bool(value)
        if cuda._module is not None:
            cuda._module._set_allow_tf32(self._which, self._value)
