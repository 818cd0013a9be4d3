"""kiln.nn modules."""

from kiln.nn.modules.activation import *
from kiln.nn.modules.attention import *
from kiln.nn.modules.batchnorm import *
from kiln.nn.modules.container import (  # noqa: F401
    ModuleDict,
    ModuleList,
    ParameterDict,
    ParameterList,
    Sequential,
)
from kiln.nn.modules.conv import *
from kiln.nn.modules.dropout import *
from kiln.nn.modules.flatten import Flatten, Identity, Unflatten  # noqa: F401
from kiln.nn.modules.linear import *
from kiln.nn.modules.loss import *
from kiln.nn.modules.module import Module, ModuleShapeError  # noqa: F401
from kiln.nn.modules.normalization import *
from kiln.nn.modules.pooling import *
from kiln.nn.modules.rnn import *
from kiln.nn.modules.sparse import *
from kiln.nn.modules.transformer import *
from kiln.nn.modules.upsampling import *
