"""kiln.nn modules."""

from kiln.nn.modules.container import (  # noqa: F401
    ModuleDict,
    ModuleList,
    ParameterDict,
    ParameterList,
    Sequential,
)
from kiln.nn.modules.flatten import Flatten, Identity, Unflatten  # noqa: F401
from kiln.nn.modules.module import Module, ModuleShapeError  # noqa: F401
