"""kiln.nn: modules, parameters and initialisation, as torch.nn."""

from kiln.nn import functional, init, utils  # noqa: F401
from kiln.nn.modules import *
from kiln.nn.modules import (  # noqa: F401
    Flatten,
    Identity,
    Module,
    ModuleDict,
    ModuleList,
    ModuleShapeError,
    ParameterDict,
    ParameterList,
    Sequential,
    Unflatten,
)
from kiln.nn.parameter import Parameter  # noqa: F401
