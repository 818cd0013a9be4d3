"""`from kiln.utils.tensorboard import SummaryWriter`, as in torch.utils.tensorboard."""

from kiln.summary import SummaryWriter

__all__ = ["SummaryWriter"]
