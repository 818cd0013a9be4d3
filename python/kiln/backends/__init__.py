"""kiln.backends: switches that tune how backends compute, as torch.backends."""

from kiln.backends import cuda, cudnn  # noqa: F401
