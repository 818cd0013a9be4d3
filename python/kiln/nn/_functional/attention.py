"""multi_head_attention_forward, as torch.nn.functional's: the whole of
MultiheadAttention (projections, optional bias_k/bias_v and zero-attention slots, merged
masks, softmax, dropout, output projection) over (L, N, E) inputs or unbatched (L, E)."""

import math

import kiln
from kiln import _C
from kiln.nn._functional.dropout import dropout
from kiln.nn._functional.spatial import linear, pad

__all__ = ["AttentionShapeError", "multi_head_attention_forward"]


class AttentionShapeError(ValueError):
    """An input of multi_head_attention_forward has the wrong shape; MultiheadAttention
    re-raises it naming the module."""

    def __init__(self, expected, got, input_shape=None):
        self.expected, self.got, self.input_shape = expected, got, input_shape
        message = f"[multi_head_attention_forward] expected {expected}, got {got}"
        if input_shape is not None:
            message += f", input shape {list(input_shape)}"
        super().__init__(message)


def _additive(mask, dtype):
    """A bool mask (True = not allowed) as 0/-inf in dtype; a float mask cast to dtype (so a
    float64 mask does not promote float32 scores)."""
    if mask.dtype == kiln.bool:
        return kiln.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))
    return mask.to(dtype)


def _check_input(name, x, size, dims):
    if x.dim() != dims:
        raise AttentionShapeError(f"{name} of {dims} dims like query", f"{x.dim()} dims", x.shape)
    if x.shape[-1] != size:
        raise AttentionShapeError(f"{name} embedding dim {size}", f"{x.shape[-1]}", x.shape)


def _merged_mask(attn_mask, key_padding_mask, N, H, L, S, dtype):
    """attn_mask (L, S) or (N*H, L, S) and key_padding_mask (N, S) as one additive mask
    broadcastable to (N, H, L, S), or None."""
    mask = None
    if attn_mask is not None:
        if attn_mask.dim() == 2:
            if tuple(attn_mask.shape) != (L, S):
                raise AttentionShapeError(f"2-D attn_mask of shape {[L, S]}", list(attn_mask.shape))
            mask = _additive(attn_mask, dtype)
        elif attn_mask.dim() == 3:
            if tuple(attn_mask.shape) != (N * H, L, S):
                raise AttentionShapeError(
                    f"3-D attn_mask of shape {[N * H, L, S]}", list(attn_mask.shape)
                )
            mask = _additive(attn_mask, dtype).reshape(N, H, L, S)
        else:
            raise AttentionShapeError("attn_mask of 2 or 3 dims", f"{attn_mask.dim()} dims")
    if key_padding_mask is not None:
        if tuple(key_padding_mask.shape) != (N, S):
            raise AttentionShapeError(
                f"key_padding_mask of shape {[N, S]}", list(key_padding_mask.shape)
            )
        kpm = _additive(key_padding_mask, dtype).reshape(N, 1, 1, S)
        mask = kpm if mask is None else mask + kpm
    return mask


def _projections(E, in_proj_weight, in_proj_bias, separate, q_w, k_w, v_w):
    # split: one node whose backward concatenates the three gradients.
    b = in_proj_bias
    biases = (None,) * 3 if b is None else b.split(E)
    weights = (q_w, k_w, v_w) if separate else in_proj_weight.split(E)
    return weights, biases


def multi_head_attention_forward(
    query,
    key,
    value,
    embed_dim_to_check,
    num_heads,
    in_proj_weight,
    in_proj_bias,
    bias_k,
    bias_v,
    add_zero_attn,
    dropout_p,
    out_proj_weight,
    out_proj_bias,
    training=True,
    key_padding_mask=None,
    need_weights=True,
    attn_mask=None,
    use_separate_proj_weight=False,
    q_proj_weight=None,
    k_proj_weight=None,
    v_proj_weight=None,
    static_k=None,
    static_v=None,
    average_attn_weights=True,
    is_causal=False,
    batch_first=False,
):
    """Returns (output, weights): output like query; weights (N, L, S) averaged over heads,
    (N, H, L, S) with average_attn_weights=False, or None without need_weights.
    batch_first (a kiln addition): batched inputs and output are (N, L, E), as
    MultiheadAttention(batch_first=True) has them; computing in that layout saves the
    copies that transposing to (L, N, E) and back would cost."""
    op = "[multi_head_attention_forward]"
    if static_k is not None or static_v is not None:
        raise NotImplementedError(f"{op} static_k and static_v are not supported")
    if (bias_k is None) != (bias_v is None):
        raise ValueError(f"{op} give both bias_k and bias_v or neither")
    if query.dim() not in (2, 3):
        raise AttentionShapeError("query of 2 or 3 dims", f"{query.dim()} dims", query.shape)
    E, H = embed_dim_to_check, num_heads
    if H <= 0 or E % H:
        raise ValueError(f"{op} embed_dim must be divisible by num_heads, got {E} and {H}")
    dims = query.dim()
    kdim = k_proj_weight.shape[-1] if use_separate_proj_weight else E
    vdim = v_proj_weight.shape[-1] if use_separate_proj_weight else E
    _check_input("query", query, E, dims)
    _check_input("key", key, kdim, dims)
    _check_input("value", value, vdim, dims)
    if is_causal and attn_mask is None:
        raise RuntimeError(f"{op} is_causal is a hint that attn_mask is causal; give attn_mask too")
    batched = dims == 3
    seq, bat = (1, 0) if batch_first else (0, 1)  # the dims of length and batch
    if not batched:
        query, key, value = query.unsqueeze(bat), key.unsqueeze(bat), value.unsqueeze(bat)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    if key.shape[seq] != value.shape[seq] or key.shape[bat] != value.shape[bat]:
        raise AttentionShapeError(
            f"value of length and batch {[key.shape[seq], key.shape[bat]]} like key",
            f"{[value.shape[seq], value.shape[bat]]}",
        )
    if key.shape[bat] != query.shape[bat]:
        raise AttentionShapeError(f"key batch size {query.shape[bat]}", f"{key.shape[bat]}")
    L, N = query.shape[seq], query.shape[bat]
    S, D = key.shape[seq], E // H

    if query is key and key is value and not use_separate_proj_weight:
        # Self-attention: one projection of the input (one GEMM, one autocast cast of the
        # input, one gradient for it), as PyTorch packs it, split into q, k and v views.
        q, k, v = linear(query, in_proj_weight, in_proj_bias).split(E, -1)
    else:
        (wq, wk, wv), (bq, bk, bv) = _projections(
            E, in_proj_weight, in_proj_bias, use_separate_proj_weight,
            q_proj_weight, k_proj_weight, v_proj_weight,
        )
        q, k, v = linear(query, wq, bq), linear(key, wk, bk), linear(value, wv, bv)
    mask = _merged_mask(attn_mask, key_padding_mask, N, H, L, S, q.dtype)
    if bias_k is not None:  # one more key/value slot, learned, that every query may attend to
        slot = [N, N]
        slot[seq] = 1
        k = kiln.cat([k, bias_k.reshape(1, 1, E).expand(*slot, E)], seq)
        v = kiln.cat([v, bias_v.reshape(1, 1, E).expand(*slot, E)], seq)
        mask = None if mask is None else pad(mask, (0, 1))
    # (len, N, E) or (N, len, E) -> (N, H, len, D)
    if batch_first:
        q, k, v = (x.reshape(N, x.shape[1], H, D).transpose(1, 2) for x in (q, k, v))
    else:
        q, k, v = (x.reshape(x.shape[0], N, H, D).permute(1, 2, 0, 3) for x in (q, k, v))
    if add_zero_attn:  # and a slot of zeros
        zeros = kiln.zeros((N, H, 1, D), dtype=k.dtype, device=k.device)
        k, v = kiln.cat([k, zeros], 2), kiln.cat([v, zeros], 2)
        mask = None if mask is None else pad(mask, (0, 1))

    if not need_weights and not (training and dropout_p > 0.0):
        # No weights to return: the one attention op (fused where the device has a kernel).
        out = _C._scaled_dot_product_attention(q, k, v, mask)  # (N, H, L, D)
    else:
        scores = kiln.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(D))
        if mask is not None:
            scores = scores + mask
        weights = kiln.softmax(scores, -1)
        if training and dropout_p > 0.0:
            weights = dropout(weights, dropout_p, True)
        out = kiln.matmul(weights, v)  # (N, H, L, D)
    if batch_first:
        out = out.transpose(1, 2).reshape(N, L, E)
    else:
        out = out.permute(2, 0, 1, 3).reshape(L, N, E)
    out = linear(out, out_proj_weight, out_proj_bias)
    if not batched:
        out = out.squeeze(bat)
    if not need_weights:
        return out, None
    if average_attn_weights:
        weights = weights.mean(1)
    if not batched:
        weights = weights.squeeze(0)
    return out, weights
