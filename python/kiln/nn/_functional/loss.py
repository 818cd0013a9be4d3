"""Loss functions (regression, binary, distribution and margin losses)."""

import warnings

import kiln
from kiln.amp._policy import op_policy


def _reduce(loss, reduction, op):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"[{op}] {reduction} is not a valid value for reduction")


def _legacy_reduction(size_average, reduce, reduction):
    """Maps the deprecated size_average/reduce flags to a reduction, as PyTorch does."""
    if size_average is None and reduce is None:
        return reduction
    reduce = True if reduce is None else reduce
    size_average = True if size_average is None else size_average
    if not reduce:
        return "none"
    return "mean" if size_average else "sum"


def _check_same_shape(input, target, op):
    if tuple(input.shape) != tuple(target.shape):
        raise ValueError(
            f"[{op}] target size {list(target.shape)} must be the same as input size "
            f"{list(input.shape)}"
        )


def _warn_broadcast(input, target, op):
    if tuple(input.shape) != tuple(target.shape):
        warnings.warn(
            f"[{op}] target size {list(target.shape)} differs from input size "
            f"{list(input.shape)}; they will be broadcast, which is likely not intended",
            stacklevel=3,
        )


@op_policy(cpu="fp32", cuda="fp32")
def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    _warn_broadcast(input, target, "mse_loss")
    diff = input - target
    loss = diff * diff
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "mse_loss")


@op_policy(cpu="fp32", cuda="fp32")
def l1_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    _warn_broadcast(input, target, "l1_loss")
    return _reduce(kiln.abs(input - target), reduction, "l1_loss")


@op_policy(cpu="fp32", cuda="fp32")
def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    if beta < 0:
        raise ValueError(f"[smooth_l1_loss] beta must be non-negative, got {beta}")
    _warn_broadcast(input, target, "smooth_l1_loss")
    diff = kiln.abs(input - target)
    if beta == 0:
        return _reduce(diff, reduction, "smooth_l1_loss")
    loss = kiln.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta)
    return _reduce(loss, reduction, "smooth_l1_loss")


@op_policy(cpu="fp32", cuda="fp32")
def huber_loss(input, target, reduction="mean", delta=1.0):
    if delta <= 0:
        raise ValueError(f"[huber_loss] delta must be positive, got {delta}")
    _warn_broadcast(input, target, "huber_loss")
    diff = kiln.abs(input - target)
    loss = kiln.where(diff < delta, 0.5 * diff * diff, delta * (diff - 0.5 * delta))
    return _reduce(loss, reduction, "huber_loss")


@op_policy(cpu="fp32", cuda="banned")
def binary_cross_entropy(
    input, target, weight=None, size_average=None, reduce=None, reduction="mean"
):
    _check_same_shape(input, target, "binary_cross_entropy")
    # PyTorch clamps log at -100 so that 0 * log(0) stays finite.
    log_p = kiln.clamp_min(kiln.log(input), -100.0)
    log_1mp = kiln.clamp_min(kiln.log(1 - input), -100.0)
    loss = -(target * log_p + (1 - target) * log_1mp)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy")


@op_policy(cpu="fp32", cuda="fp32")
def binary_cross_entropy_with_logits(
    input, target, weight=None, size_average=None, reduce=None, reduction="mean", pos_weight=None
):
    _check_same_shape(input, target, "binary_cross_entropy_with_logits")
    # -log(sigmoid(x)) = softplus(-x) and -log(1 - sigmoid(x)) = softplus(x), both stable.
    log_sig_neg = kiln.softplus(-input)
    if pos_weight is not None:
        loss = (1 - target) * input + (1 + (pos_weight - 1) * target) * log_sig_neg
    else:
        loss = (1 - target) * input + log_sig_neg
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


@op_policy(cpu="fp32", cuda="fp32")
def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    if log_target:
        loss = kiln.exp(target) * (target - input)
    else:
        # 0 * log(0) is 0 by convention.
        safe = kiln.where(target > 0, target, kiln.ones_like(target))
        loss = kiln.where(target > 0, target * (kiln.log(safe) - input), kiln.zeros_like(input))
    if reduction == "batchmean":
        return loss.sum() / (input.shape[0] if input.dim() > 0 else 1)
    return _reduce(loss, reduction, "kl_div")


@op_policy(cpu="fp32", cuda="fp32")
def cosine_embedding_loss(
    input1, input2, target, margin=0.0, size_average=None, reduce=None, reduction="mean"
):
    from kiln.nn._functional.spatial import cosine_similarity

    cos = cosine_similarity(input1, input2, dim=-1, eps=1e-8)
    loss = kiln.where(target > 0, 1 - cos, kiln.clamp_min(cos - margin, 0.0))
    return _reduce(loss, reduction, "cosine_embedding_loss")


@op_policy(cpu="fp32", cuda="fp32")
def margin_ranking_loss(
    input1, input2, target, margin=0.0, size_average=None, reduce=None, reduction="mean"
):
    loss = kiln.clamp_min(-target * (input1 - input2) + margin, 0.0)
    return _reduce(loss, reduction, "margin_ranking_loss")


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    diff = kiln.abs(x1 - x2 + eps)
    if p == 1:
        return diff.sum(-1, keepdim=keepdim)
    return (diff**p).sum(-1, keepdim=keepdim) ** (1.0 / p)


@op_policy(cpu="fp32", cuda="fp32")
def triplet_margin_loss(
    anchor,
    positive,
    negative,
    margin=1.0,
    p=2,
    eps=1e-6,
    swap=False,
    size_average=None,
    reduce=None,
    reduction="mean",
):
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = kiln.minimum(d_neg, pairwise_distance(positive, negative, p, eps))
    loss = kiln.clamp_min(d_pos - d_neg + margin, 0.0)
    return _reduce(loss, reduction, "triplet_margin_loss")


def cross_entropy(
    input,
    target,
    weight=None,
    size_average=None,
    ignore_index=-100,
    reduce=None,
    reduction="mean",
    label_smoothing=0.0,
):
    """Fused log_softmax + nll over dim 1 (dim 0 for an unbatched input); target holds class
    indices or, with the input's shape, class probabilities."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    return kiln.cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing)


def nll_loss(
    input,
    target,
    weight=None,
    size_average=None,
    ignore_index=-100,
    reduce=None,
    reduction="mean",
):
    reduction = _legacy_reduction(size_average, reduce, reduction)
    return kiln.nll_loss(input, target, weight, ignore_index, reduction)
