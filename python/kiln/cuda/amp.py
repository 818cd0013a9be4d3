"""kiln.cuda.amp: deprecated aliases of kiln.amp's CUDA autocast and GradScaler, as torch.cuda.amp."""

import functools
import warnings

from kiln import amp as _amp

__all__ = ["GradScaler", "autocast", "custom_bwd", "custom_fwd"]


class autocast(_amp.autocast):
    """Deprecated: use kiln.amp.autocast("cuda", ...)."""

    def __init__(self, enabled=True, dtype=None, cache_enabled=True):
        warnings.warn(
            "`kiln.cuda.amp.autocast(args...)` is deprecated. Please use "
            '`kiln.amp.autocast("cuda", args...)` instead.',
            FutureWarning,
            stacklevel=2,
        )
        super().__init__("cuda", dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)


class GradScaler(_amp.GradScaler):
    """Deprecated: use kiln.amp.GradScaler("cuda", ...)."""

    def __init__(
        self,
        init_scale=2.0**16,
        growth_factor=2.0,
        backoff_factor=0.5,
        growth_interval=2000,
        enabled=True,
    ):
        warnings.warn(
            "`kiln.cuda.amp.GradScaler(args...)` is deprecated. Please use "
            '`kiln.amp.GradScaler("cuda", args...)` instead.',
            FutureWarning,
            stacklevel=2,
        )
        super().__init__(
            "cuda", init_scale, growth_factor, backoff_factor, growth_interval, enabled
        )


custom_fwd = functools.partial(_amp.custom_fwd, device_type="cuda")
custom_bwd = functools.partial(_amp.custom_bwd, device_type="cuda")
