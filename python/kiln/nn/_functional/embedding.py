"""Embedding lookup."""

import kiln


def embedding(
    input,
    weight,
    padding_idx=None,
    max_norm=None,
    norm_type=2.0,
    scale_grad_by_freq=False,
    sparse=False,
):
    """Rows of weight picked by the integer input; the padding_idx row gets no gradient.
    With max_norm, looked-up rows whose norm exceeds it are rescaled in place first (as
    PyTorch does)."""
    if scale_grad_by_freq or sparse:
        raise NotImplementedError(
            "[embedding] scale_grad_by_freq and sparse gradients are not supported"
        )
    if padding_idx is not None:
        rows = weight.shape[0]
        if not -rows <= padding_idx < rows:
            raise ValueError(
                f"[embedding] padding_idx {padding_idx} is out of range for {rows} embeddings"
            )
        padding_idx = padding_idx % rows
    if max_norm is not None:
        _renorm_rows(input, weight, max_norm, norm_type)
    return kiln.embedding(input, weight, padding_idx)


def _renorm_rows(input, weight, max_norm, norm_type):
    with kiln.no_grad():
        idx = kiln.unique(input.reshape(-1))
        rows = weight.index_select(0, idx)
        norms = kiln.norm(rows, norm_type, dim=1, keepdim=True)
        # Same epsilon as PyTorch, so rescaled rows land just under max_norm.
        scale = kiln.where(norms > max_norm, max_norm / (norms + 1e-7), kiln.ones_like(norms))
        weight[idx] = rows * scale
