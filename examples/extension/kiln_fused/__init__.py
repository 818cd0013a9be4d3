"""kiln_fused: an example kiln extension (a fused bias + GELU op with a backward)."""

import os

import kiln

kiln.ops.load_library(os.path.join(os.path.dirname(__file__), "fused_ops.so"))

bias_gelu = kiln.ops.kiln_fused.bias_gelu


class BiasGELU(kiln.nn.Module):
    """``gelu(x + bias)`` (tanh approximation) with a learnable bias, fused in one kernel."""

    def __init__(self, features):
        super().__init__()
        self.bias = kiln.nn.Parameter(kiln.zeros(features))

    def forward(self, x):
        return bias_gelu(x, self.bias)
