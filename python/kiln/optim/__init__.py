"""kiln.optim: optimizers (one fused C++ step per param group) and lr schedulers."""

from kiln.optim import lr_scheduler  # noqa: F401
from kiln.optim.adadelta import Adadelta  # noqa: F401
from kiln.optim.adagrad import Adagrad  # noqa: F401
from kiln.optim.adam import Adam, AdamW  # noqa: F401
from kiln.optim.adamax import Adamax  # noqa: F401
from kiln.optim.lbfgs import LBFGS  # noqa: F401
from kiln.optim.nadam import NAdam  # noqa: F401
from kiln.optim.optimizer import Optimizer  # noqa: F401
from kiln.optim.radam import RAdam  # noqa: F401
from kiln.optim.rmsprop import RMSprop  # noqa: F401
from kiln.optim.sgd import SGD  # noqa: F401
