"""Soft Dice for tiny structures: only (sample, class) pairs whose reference contains the class are scored.

Why not nnU-Net's ``MemoryEfficientSoftDiceLoss`` as it is: with ``smooth = 1e-5`` a patch without thrombus scores
``smooth / (sum(p) + smooth)``, which tends to 1 as the network drives every foreground probability towards 0.
A thrombus fills 0.1-1% of a training patch and most patches hold none, so on our cohorts the cheapest way down
the loss is to predict nothing, ever more confidently. Measured on the demo cohort (docs/results/demo.md): after
1,000 iterations the soft Dice of the training batches read 0.3 while the network's thrombus probability was
below 0.0005 at every voxel of every case, training cases included. Scoring only the pairs that contain the class
removes that reward; cross-entropy still teaches "background" on the empty patches.
"""
from __future__ import annotations

import torch
from torch import nn


class PresentClassSoftDiceLoss(nn.Module):
    """Negative soft Dice averaged over the (sample, class) pairs whose reference holds that class.

    ``x``: network output (B, C, *spatial), logits unless ``apply_nonlin`` is None; ``y``: label map (B, 1, *spatial)
    or (B, *spatial), or one-hot (B, C, *spatial); ``loss_mask``: optional (B, 1, *spatial), 1 = counts.
    ``batch_dice``: sum over the batch first, so a class counts when present anywhere in the batch. ``do_bg``:
    include class 0. Returns a scalar in [-1, 0]; exactly 0 (still attached to the graph) when no pair is present.
    The constructor matches nnU-Net's Dice classes (``DC_and_CE_loss(dice_class=...)``); ``ddp`` is accepted for
    that signature, and with ``batch_dice`` the sums are gathered over DDP workers as nnU-Net does.
    """

    def __init__(self, apply_nonlin=None, batch_dice: bool = False, do_bg: bool = False, smooth: float = 1e-5,
                 ddp: bool = False):
        super().__init__()
        self.apply_nonlin, self.batch_dice, self.do_bg, self.smooth, self.ddp = (apply_nonlin, batch_dice, do_bg,
                                                                                  smooth, ddp)

    def forward(self, x: torch.Tensor, y: torch.Tensor, loss_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.apply_nonlin is not None:
            x = self.apply_nonlin(x)
        axes = tuple(range(2, x.ndim))
        with torch.no_grad():
            if y.ndim != x.ndim:
                y = y.view(y.shape[0], 1, *y.shape[1:])
            if y.shape == x.shape:
                onehot = y.to(torch.float32)
            else:
                onehot = torch.zeros(x.shape, device=x.device, dtype=torch.float32)
                onehot.scatter_(1, y.long(), 1)
            if loss_mask is not None:
                onehot = onehot * loss_mask
        if not self.do_bg:
            x, onehot = x[:, 1:], onehot[:, 1:]
        xm = x if loss_mask is None else x * loss_mask
        intersect = (xm * onehot).sum(axes, dtype=torch.float32)
        sum_pred = xm.sum(axes, dtype=torch.float32)
        sum_gt = onehot.sum(axes, dtype=torch.float32)
        if self.batch_dice:
            if self.ddp and torch.distributed.is_available() and torch.distributed.is_initialized():
                from nnunetv2.utilities.ddp_allgather import AllGatherGrad

                intersect = AllGatherGrad.apply(intersect).sum(0)
                sum_pred = AllGatherGrad.apply(sum_pred).sum(0)
                sum_gt = AllGatherGrad.apply(sum_gt).sum(0)
            intersect, sum_pred, sum_gt = intersect.sum(0), sum_pred.sum(0), sum_gt.sum(0)
        dice = (2 * intersect + self.smooth) / torch.clip(sum_gt + sum_pred + self.smooth, 1e-8)
        present = sum_gt > 0
        if not bool(present.any()):
            return x.sum() * 0.0
        return -dice[present].mean()
