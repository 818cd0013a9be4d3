"""Upsample and PixelShuffle: resampling modules."""

from kiln.nn import functional as F
from kiln.nn.modules.module import Module

__all__ = ["PixelShuffle", "Upsample"]


class Upsample(Module):
    """Resizes (N, C, *spatial) input by `size` or `scale_factor` (nearest/linear/bilinear)."""

    def __init__(
        self,
        size=None,
        scale_factor=None,
        mode="nearest",
        align_corners=None,
        recompute_scale_factor=None,
    ):
        super().__init__()
        self.size = size
        self.scale_factor = (
            float(scale_factor)
            if isinstance(scale_factor, (int, float))
            else (tuple(float(f) for f in scale_factor) if scale_factor is not None else None)
        )
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input):
        if input.dim() < 3:
            self._shape_error("(N, C, *spatial) input", f"{input.dim()}-D", input.shape)
        return F.interpolate(
            input,
            self.size,
            self.scale_factor,
            self.mode,
            self.align_corners,
            self.recompute_scale_factor,
        )

    def extra_repr(self):
        if self.scale_factor is not None:
            info = f"scale_factor={self.scale_factor!r}"
        else:
            info = f"size={self.size!r}"
        return info + f", mode={self.mode!r}"


class PixelShuffle(Module):
    """(*, C r^2, H, W) -> (*, C, H r, W r)."""

    def __init__(self, upscale_factor):
        super().__init__()
        self.upscale_factor = upscale_factor

    def forward(self, input):
        r2 = self.upscale_factor**2
        if input.dim() < 3 or input.shape[-3] % r2:
            self._shape_error(f"(*, C * {r2}, H, W) input", f"{list(input.shape)}", input.shape)
        return F.pixel_shuffle(input, self.upscale_factor)

    def extra_repr(self):
        return f"upscale_factor={self.upscale_factor}"
