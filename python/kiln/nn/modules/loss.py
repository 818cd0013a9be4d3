"""Loss modules: hold the options and call kiln.nn.functional."""

from kiln.nn import functional as F
from kiln.nn.modules.module import Module

__all__ = [
    "BCELoss",
    "BCEWithLogitsLoss",
    "CosineEmbeddingLoss",
    "CrossEntropyLoss",
    "HuberLoss",
    "KLDivLoss",
    "L1Loss",
    "MSELoss",
    "MarginRankingLoss",
    "NLLLoss",
    "SmoothL1Loss",
    "TripletMarginLoss",
]


class _Loss(Module):
    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__()
        if size_average is not None or reduce is not None:
            # Legacy flags, mapped as PyTorch does.
            reduce = True if reduce is None else reduce
            size_average = True if size_average is None else size_average
            reduction = "none" if not reduce else ("mean" if size_average else "sum")
        self.reduction = reduction

    def _check_target(self, input, target):
        """Elementwise losses: a target whose shape differs from the input's is almost always
        a bug (PyTorch only warns and broadcasts), so the module names itself and refuses."""
        if tuple(input.shape) != tuple(target.shape):
            self._shape_error(
                f"target of the input's shape {list(input.shape)}",
                f"target shape {list(target.shape)}",
                input.shape,
            )


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)


class MSELoss(_Loss):
    def forward(self, input, target):
        self._check_target(input, target)
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    def forward(self, input, target):
        self._check_target(input, target)
        return F.l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    def __init__(self, size_average=None, reduce=None, reduction="mean", beta=1.0):
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input, target):
        self._check_target(input, target)
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input, target):
        self._check_target(input, target)
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class BCELoss(_WeightedLoss):
    def forward(self, input, target):
        self._check_target(input, target)
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    def __init__(
        self, weight=None, size_average=None, reduce=None, reduction="mean", pos_weight=None
    ):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):
        self._check_target(input, target)
        return F.binary_cross_entropy_with_logits(
            input, target, self.weight, reduction=self.reduction, pos_weight=self.pos_weight
        )


class KLDivLoss(_Loss):
    def __init__(self, size_average=None, reduce=None, reduction="mean", log_target=False):
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def forward(self, input, target):
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class _MarginLoss(_Loss):
    def __init__(self, margin=0.0, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.margin = margin


class CosineEmbeddingLoss(_MarginLoss):
    def forward(self, input1, input2, target):
        return F.cosine_embedding_loss(
            input1, input2, target, self.margin, reduction=self.reduction
        )


class MarginRankingLoss(_MarginLoss):
    def forward(self, input1, input2, target):
        return F.margin_ranking_loss(input1, input2, target, self.margin, reduction=self.reduction)


class TripletMarginLoss(_Loss):
    def __init__(
        self,
        margin=1.0,
        p=2.0,
        eps=1e-6,
        swap=False,
        size_average=None,
        reduce=None,
        reduction="mean",
    ):
        super().__init__(size_average, reduce, reduction)
        self.margin = margin
        self.p = p
        self.eps = eps
        self.swap = swap

    def forward(self, anchor, positive, negative):
        return F.triplet_margin_loss(
            anchor,
            positive,
            negative,
            self.margin,
            self.p,
            self.eps,
            self.swap,
            reduction=self.reduction,
        )


class _ClassLoss(_WeightedLoss):
    """Losses over class scores of shape (C), (N, C) or (N, C, d1, ...) with integer class
    targets of the input's shape less the class dim."""

    def __init__(
        self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"
    ):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def _check_classes(self, input, target, allow_probabilities):
        if input.dim() < 1:
            self._shape_error("input of class scores (C), (N, C) or (N, C, ...)", "a scalar")
        if allow_probabilities and target.is_floating_point():
            if tuple(target.shape) != tuple(input.shape):
                self._shape_error(
                    f"probability target of the input's shape {list(input.shape)}",
                    f"target shape {list(target.shape)}",
                    input.shape,
                )
            return
        class_dim = 0 if input.dim() == 1 else 1
        expected = tuple(s for i, s in enumerate(input.shape) if i != class_dim)
        if tuple(target.shape) != expected:
            self._shape_error(
                f"class-index target of shape {list(expected)}",
                f"target shape {list(target.shape)}",
                input.shape,
            )
        classes = input.shape[class_dim]
        if self.weight is not None and tuple(self.weight.shape) != (classes,):
            self._shape_error(
                f"input with {self.weight.shape[0] if self.weight.dim() else 0} classes "
                "(the weight's size)",
                f"{classes} classes",
                input.shape,
            )


class CrossEntropyLoss(_ClassLoss):
    def __init__(
        self,
        weight=None,
        size_average=None,
        ignore_index=-100,
        reduce=None,
        reduction="mean",
        label_smoothing=0.0,
    ):
        super().__init__(weight, size_average, ignore_index, reduce, reduction)
        self.label_smoothing = label_smoothing

    def forward(self, input, target):
        self._check_classes(input, target, allow_probabilities=True)
        return F.cross_entropy(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )


class NLLLoss(_ClassLoss):
    def forward(self, input, target):
        self._check_classes(input, target, allow_probabilities=False)
        return F.nll_loss(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )
