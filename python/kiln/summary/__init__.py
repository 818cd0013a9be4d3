"""TensorBoard logging: `SummaryWriter` writes event files the real `tensorboard` reads.

Needs the `tensorboard` package (``pip install kiln[tensorboard]``), for its
protobuf classes only: no TensorFlow, no tensorboardX.
"""

from kiln.summary import _proto  # noqa: F401  (fails early with the install hint)
from kiln.summary.writer import SummaryWriter

__all__ = ["SummaryWriter"]
