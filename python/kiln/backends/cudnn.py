"""kiln.backends.cudnn.allow_tf32, under PyTorch's name so ported scripts keep working:
whether float32 convolutions on CUDA may use TF32 tensor cores. On by default, as in
PyTorch. (kiln's convolutions run on cuBLAS, not cuDNN; the switch means the same.)"""

import sys

from kiln.backends._tf32 import Tf32Switch


class _Module(type(sys.modules[__name__])):
    allow_tf32 = Tf32Switch("conv", True)


sys.modules[__name__].__class__ = _Module
