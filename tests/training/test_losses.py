"""PresentClassSoftDiceLoss: exact values on hand-made batches, and the reward it removes."""
from __future__ import annotations

import pytest
import torch
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

from nnunet_thrombus.training.losses import PresentClassSoftDiceLoss


def _probs(fg: torch.Tensor) -> torch.Tensor:
    """(B, 2, ...) probabilities from a foreground probability map (B, ...)."""
    return torch.stack([1 - fg, fg], 1)


def test_exact_dice_on_a_present_sample_and_empty_sample_ignored():
    # sample 0: reference 4 voxels, prediction 0.5 on those 4 and 0.5 on 4 others: Dice = 2*2 / (4 + 4) = 0.5
    ref = torch.zeros(2, 1, 4, 4)
    ref[0, 0, 0, :] = 1
    fg = torch.zeros(2, 4, 4)
    fg[0, 0, :] = 0.5
    fg[0, 1, :] = 0.5
    fg[1] = 0.3  # sample 1 has no reference voxel: must not count
    loss = PresentClassSoftDiceLoss(smooth=0.0)(_probs(fg), ref)
    assert loss.item() == pytest.approx(-0.5, abs=1e-6)


def test_batch_mode_pools_the_batch():
    ref = torch.zeros(2, 1, 4, 4)
    ref[0, 0, 0, :] = 1                       # 4 reference voxels, all in sample 0
    fg = torch.zeros(2, 4, 4)
    fg[0, 0, :] = 1.0                         # 4 correct
    fg[1, 0, :] = 1.0                         # 4 false positives in sample 1
    loss = PresentClassSoftDiceLoss(batch_dice=True, smooth=0.0)(_probs(fg), ref)
    assert loss.item() == pytest.approx(-2 * 4 / (4 + 8), abs=1e-6)


def test_no_reward_for_predicting_nothing_on_empty_patches():
    """nnU-Net's Dice (smooth 1e-5) scores an empty patch near 1 when the prediction is ~0: that is the reward we
    remove. Ours returns exactly 0 for an all-empty batch, and keeps a gradient path."""
    ref = torch.zeros(2, 1, 8, 8, 8)
    logits = torch.zeros(2, 2, 8, 8, 8)
    logits[:, 0] = 25.0                       # thrombus probability about 1.4e-11 everywhere
    logits.requires_grad_(True)
    nnunet = MemoryEfficientSoftDiceLoss(apply_nonlin=lambda t: torch.softmax(t, 1), smooth=1e-5, do_bg=False,
                                         ddp=False)(logits, ref)
    ours = PresentClassSoftDiceLoss(apply_nonlin=lambda t: torch.softmax(t, 1))(logits, ref)
    assert nnunet.item() < -0.9               # near-perfect "Dice" for predicting nothing
    assert ours.item() == 0.0
    ours.backward()
    assert logits.grad is not None and float(logits.grad.abs().sum()) == 0.0


def test_loss_mask_excludes_voxels():
    ref = torch.zeros(1, 1, 4, 4)
    ref[0, 0, 0, :2] = 1
    fg = torch.zeros(1, 4, 4)
    fg[0, 0, :2] = 1.0
    fg[0, 3, :] = 1.0                         # 4 false positives, masked out below
    mask = torch.ones(1, 1, 4, 4)
    mask[0, 0, 3, :] = 0
    loss = PresentClassSoftDiceLoss(smooth=0.0)(_probs(fg), ref, loss_mask=mask)
    assert loss.item() == pytest.approx(-1.0, abs=1e-6)
