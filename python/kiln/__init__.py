"""kiln: eager deep learning with a C++ core.

`import kiln` gives a Tensor that behaves like torch.Tensor, reverse-mode
autograd implemented in C++, and PyTorch's names for the ops.
"""

import os as _os

# Idle OpenMP workers sleep instead of spinning: spinning workers starve OpenBLAS's own
# threads (and other processes) on small machines — a small CNN trained ~40x slower with
# spinning on 2 cores. libgomp reads this once, when libkiln loads it below.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from kiln import _C  # noqa: E402
from kiln._C import (  # noqa: E402  # noqa: F401
    Tensor,
    device,
    dtype,
    bool,
    uint8,
    int8,
    int16,
    int32,
    int64,
    float16,
    bfloat16,
    float32,
    float64,
    from_numpy,
    get_default_dtype,
    set_default_dtype,
    get_num_threads,
    set_num_threads,
    promote_types,
    result_type,
    is_grad_enabled,
)

# Familiar aliases (torch.float, torch.long, ...).
float = float32  # noqa: A001
double = float64
half = float16
long = int64
int = int32  # noqa: A001
short = int16

from kiln import _tensor  # noqa: E402,F401  (attaches Python-level Tensor methods)
from kiln import _tensor_new  # noqa: E402,F401  (Tensor.new_*, __format__)
from kiln._tensor_str import set_printoptions  # noqa: E402,F401
# C++ ops first; the Python wrappers below (argument parsing) take precedence.
from kiln._ops import *  # noqa: E402,F401,F403
from kiln import autograd  # noqa: E402
from kiln._creation import (  # noqa: E402,F401
    tensor,
    as_tensor,
    empty,
    zeros,
    ones,
    full,
    empty_like,
    zeros_like,
    ones_like,
    full_like,
)
from kiln._random import (  # noqa: E402,F401
    rand,
    randn,
    randint,
    randperm,
    rand_like,
    randn_like,
    randint_like,
)
from kiln._range import arange, linspace, eye  # noqa: E402,F401
from kiln._C import Generator, default_generator  # noqa: E402,F401
from kiln import return_types  # noqa: E402,F401
from kiln.autograd import (  # noqa: E402,F401
    no_grad,
    enable_grad,
    set_grad_enabled,
    inference_mode,
    is_inference_mode_enabled,
)

from kiln.serialization import save, load  # noqa: E402,F401
from kiln import cuda, backends  # noqa: E402,F401  (loads the CUDA module when present)
from kiln import accelerator, nn, optim  # noqa: E402,F401
from kiln import amp  # noqa: E402,F401
from kiln._C import _amp_foreach_non_finite_check_and_unscale_, _amp_update_scale_  # noqa: E402,F401
from kiln.amp import autocast  # noqa: E402,F401
import kiln.cuda.amp  # noqa: E402,F401  (deprecated aliases, as torch.cuda.amp)
from kiln import ops  # noqa: E402,F401  (kiln.ops.<namespace>.<op>: extension ops)

__version__ = "0.1.0"
