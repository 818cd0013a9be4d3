"""kiln.nn: modules, parameters and initialisation, as torch.nn."""

from kiln.nn.parameter import Parameter  # noqa: F401
from kiln.nn.modules import *  # noqa: F401,F403
from kiln.nn.modules import (  # noqa: F401
    Module,
    ModuleShapeError,
    Sequential,
    ModuleList,
    ModuleDict,
    ParameterList,
    ParameterDict,
    Identity,
    Flatten,
    Unflatten,
)
from kiln.nn import init  # noqa: F401
