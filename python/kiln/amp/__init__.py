"""kiln.amp: automatic mixed precision (autocast and gradient scaling), as torch.amp."""

from kiln.amp.autocast_mode import (  # noqa: F401
    autocast,
    custom_bwd,
    custom_fwd,
    is_autocast_available,
)
from kiln.amp.grad_scaler import GradScaler  # noqa: F401

__all__ = ["autocast", "custom_bwd", "custom_fwd", "is_autocast_available", "GradScaler"]
