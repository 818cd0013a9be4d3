"""MultiheadAttention, as torch.nn.MultiheadAttention (same parameter names, so torch
state_dicts load). Composed from kiln ops: projections, scaled scores, merged additive mask,
softmax, dropout, weighted sum, output projection."""

import math

import kiln
from kiln.nn import functional as F
from kiln.nn import init
from kiln.nn.modules.linear import Linear
from kiln.nn.modules.module import Module
from kiln.nn.parameter import Parameter

__all__ = ["MultiheadAttention"]


def _additive(mask, dtype):
    """A bool mask (True = not allowed) as 0/-inf in dtype; a float mask cast to dtype (so a
    float64 mask does not promote float32 scores)."""
    if mask.dtype == kiln.bool:
        return kiln.masked_fill(kiln.zeros(mask.shape, dtype=dtype), mask, float("-inf"))
    return mask.to(dtype)


class MultiheadAttention(Module):
    """Attention over num_heads heads of size embed_dim // num_heads. Inputs are (L, N, E), or
    (N, L, E) with batch_first, or unbatched (L, E). add_bias_kv/add_zero_attn are unsupported."""

    def __init__(
        self,
        embed_dim,
        num_heads,
        dropout=0.0,
        bias=True,
        add_bias_kv=False,
        add_zero_attn=False,
        kdim=None,
        vdim=None,
        batch_first=False,
        device=None,
        dtype=None,
    ):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(
                f"[MultiheadAttention] embed_dim and num_heads must be > 0, got "
                f"embed_dim={embed_dim} and num_heads={num_heads}"
            )
        if embed_dim % num_heads:
            raise ValueError(
                f"[MultiheadAttention] embed_dim must be divisible by num_heads, got "
                f"embed_dim={embed_dim} and num_heads={num_heads}"
            )
        if add_bias_kv or add_zero_attn:
            raise NotImplementedError(
                "[MultiheadAttention] add_bias_kv and add_zero_attn are not supported"
            )
        self.embed_dim = embed_dim
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        self.bias_k = self.bias_v = None
        self.add_zero_attn = False

        def weight(*shape):
            return Parameter(kiln.empty(*shape, dtype=dtype))

        if self._qkv_same_embed_dim:
            self.in_proj_weight = weight(3 * embed_dim, embed_dim)
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = weight(embed_dim, embed_dim)
            self.k_proj_weight = weight(embed_dim, self.kdim)
            self.v_proj_weight = weight(embed_dim, self.vdim)
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = weight(3 * embed_dim)
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        self._reset_parameters()

    def _reset_parameters(self):
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)

    def _check_dim(self, name, x, size, batched):
        if x.dim() != (3 if batched else 2):
            self._shape_error(
                f"{name} of {3 if batched else 2} dims like query", f"{x.dim()} dims", x.shape
            )
        if x.shape[-1] != size:
            self._shape_error(f"{name} embedding dim {size}", f"{x.shape[-1]}", x.shape)

    def _project(self, query, key, value):
        E = self.embed_dim
        b = self.in_proj_bias
        bq, bk, bv = (None,) * 3 if b is None else (b[:E], b[E : 2 * E], b[2 * E :])
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            wq, wk, wv = w[:E], w[E : 2 * E], w[2 * E :]
        else:
            wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        return F.linear(query, wq, bq), F.linear(key, wk, bk), F.linear(value, wv, bv)

    def _merged_mask(self, attn_mask, key_padding_mask, N, L, S, dtype):
        """attn_mask (L, S) or (N*H, L, S) and key_padding_mask (N, S), as one additive mask
        broadcastable to (N, H, L, S), or None."""
        mask = None
        if attn_mask is not None:
            if attn_mask.dim() == 2:
                if tuple(attn_mask.shape) != (L, S):
                    self._shape_error(f"2-D attn_mask of shape {[L, S]}", list(attn_mask.shape))
                mask = _additive(attn_mask, dtype)
            elif attn_mask.dim() == 3:
                want = (N * self.num_heads, L, S)
                if tuple(attn_mask.shape) != want:
                    self._shape_error(f"3-D attn_mask of shape {list(want)}", list(attn_mask.shape))
                mask = _additive(attn_mask, dtype).reshape(N, self.num_heads, L, S)
            else:
                self._shape_error("attn_mask of 2 or 3 dims", f"{attn_mask.dim()} dims")
        if key_padding_mask is not None:
            if tuple(key_padding_mask.shape) != (N, S):
                self._shape_error(
                    f"key_padding_mask of shape {[N, S]}", list(key_padding_mask.shape)
                )
            kpm = _additive(key_padding_mask, dtype).reshape(N, 1, 1, S)
            mask = kpm if mask is None else mask + kpm
        return mask

    def forward(
        self,
        query,
        key,
        value,
        key_padding_mask=None,
        need_weights=True,
        attn_mask=None,
        average_attn_weights=True,
        is_causal=False,
    ):
        batched = query.dim() == 3
        if query.dim() not in (2, 3):
            self._shape_error("query of 2 or 3 dims", f"{query.dim()} dims", query.shape)
        self._check_dim("query", query, self.embed_dim, batched)
        self._check_dim("key", key, self.kdim, batched)
        self._check_dim("value", value, self.vdim, batched)
        if is_causal and attn_mask is None:
            raise RuntimeError(
                "[MultiheadAttention] is_causal is a hint that attn_mask is causal; "
                "give attn_mask too"
            )
        if not batched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif self.batch_first:
            query, key, value = (x.transpose(0, 1) for x in (query, key, value))
        if key.shape[0] != value.shape[0] or key.shape[1] != value.shape[1]:
            self._shape_error(
                f"value of length and batch {list(key.shape[:2])} like key",
                f"{list(value.shape[:2])}",
            )
        if key.shape[1] != query.shape[1]:
            self._shape_error(f"key batch size {query.shape[1]}", f"{key.shape[1]}")
        L, N, _ = query.shape
        S = key.shape[0]
        H, D = self.num_heads, self.head_dim

        q, k, v = self._project(query, key, value)
        # (len, N, E) -> (N, H, len, D)
        q, k, v = (x.reshape(x.shape[0], N, H, D).permute(1, 2, 0, 3) for x in (q, k, v))
        scores = kiln.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(D))
        mask = self._merged_mask(attn_mask, key_padding_mask, N, L, S, scores.dtype)
        if mask is not None:
            scores = scores + mask
        weights = kiln.softmax(scores, -1)
        if self.dropout > 0.0:
            weights = kiln.dropout(weights, self.dropout, self.training)
        out = kiln.matmul(weights, v)  # (N, H, L, D)
        out = out.permute(2, 0, 1, 3).reshape(L, N, self.embed_dim)
        out = F.linear(out, self.out_proj.weight, self.out_proj.bias)
        if not batched:
            out = out.squeeze(1)
        elif self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(1)
        if not batched:
            weights = weights.squeeze(0)
        return out, weights
