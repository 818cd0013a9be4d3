"""kiln.nn modules."""

from kiln.nn.modules.module import Module, ModuleShapeError  # noqa: F401
from kiln.nn.modules.container import (  # noqa: F401
    Sequential,
    ModuleList,
    ModuleDict,
    ParameterList,
    ParameterDict,
)
from kiln.nn.modules.flatten import Identity, Flatten, Unflatten  # noqa: F401
