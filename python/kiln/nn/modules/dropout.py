"""Dropout and Dropout2d: random zeroing in training mode, identity in eval mode."""

from kiln.nn import functional as F
from kiln.nn.modules.module import Module

__all__ = ["Dropout", "Dropout2d"]


class _DropoutNd(Module):
    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(
                f"[{type(self).__name__}] dropout probability has to be between 0 and 1, "
                f"but got {p}"
            )
        self.p = p
        self.inplace = inplace

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    def forward(self, input):
        return F.dropout(input, self.p, self.training, self.inplace)


class Dropout2d(_DropoutNd):
    """Zeroes whole channels of (N, C, H, W) inputs; a 3-D input is taken as (N, C, L), as
    PyTorch currently does."""

    def forward(self, input):
        if input.dim() not in (3, 4):
            self._shape_error(
                "3-D (N, C, L) or 4-D (N, C, H, W) input", f"{input.dim()}-D", input.shape
            )
        return F.dropout2d(input, self.p, self.training, self.inplace)
