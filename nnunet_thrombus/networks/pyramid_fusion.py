"""Scale-aware pyramid fusion: parallel dilated convolutions fused by learned per-voxel scale weights.

After the scale-aware pyramid fusion (SAPF) module of CPFNet: Feng S, Zhao H, Shi F, et al. CPFNet:
Context Pyramid Fusion Network for Medical Image Segmentation. IEEE Trans Med Imaging 2020;39:3008-18.
Zhu et al. (AJNR 2023) use "3 parallel dilated convolutions with different dilation rates" to capture
information at several scales; CPFNet places the module at the top of the encoder, and so do we
(see docs/architecture.md).

Data flow (n = number of dilations, default 3)::

    x (B, C, *S) ─┬─ conv3 d=1 ─ norm ─ nonlin ─► b1 ─┐   (the three convs share one kernel by default)
                  ├─ conv3 d=2 ─ norm ─ nonlin ─► b2 ─┼─ sum ─ 1x1 conv ─ nonlin ─ 1x1 conv ─ softmax_n ─► W (B, n, *S)
                  └─ conv3 d=3 ─ norm ─ nonlin ─► b3 ─┘
    out = x + sum_i W[:, i] * b_i        (B, C, *S)   (residual path)

Default dilations (1, 2, 3): at the bottleneck of the paper's configuration (patch 96x160x160, total
stride 16 -> 6x10x10 voxels) a 3-tap kernel with dilation 3 already spans 7 voxels, more than the
6-voxel z extent, so larger rates (CPFNet's 4) would mostly read zero padding; rates without a common
factor > 1 also avoid the gridding pattern of stacked dilations (Wang et al., WACV 2018, "hybrid
dilated convolution"). dynamic-network-architectures' conv blocks fix dilation=1, so the dilated
convolutions are applied here, once, through ``torch.nn.functional`` (which also lets the three
branches share one kernel, as CPFNet's SAPF does).
"""

from __future__ import annotations

from typing import Sequence, Type

import torch
import torch.nn.functional as F
from dynamic_network_architectures.building_blocks.helper import convert_conv_op_to_dim, maybe_convert_scalar_to_list
from torch import nn
from torch.nn.modules.conv import _ConvNd


def _norm_nonlin(channels: int, norm_op, norm_op_kwargs, nonlin, nonlin_kwargs) -> nn.Sequential:
    ops: list[nn.Module] = []
    if norm_op is not None:
        ops.append(norm_op(channels, **(norm_op_kwargs or {})))
    if nonlin is not None:
        ops.append(nonlin(**(nonlin_kwargs or {})))
    return nn.Sequential(*ops)


class ScaleAwarePyramidFusion(nn.Module):
    """Parallel dilated convs fused by a softmax over scales per voxel, plus a residual path.

    Args:
        channels: input and output channels C.
        conv_op: ``nn.Conv2d`` or ``nn.Conv3d``.
        dilations: one branch per dilation rate, default (1, 2, 3).
        kernel_size: int or per-axis list of odd sizes (default 3; anisotropic plans may give [1, 3, 3]).
        conv_bias, norm_op, norm_op_kwargs, nonlin, nonlin_kwargs: as in the nnU-Net plans.
        attention_reduction: hidden width of the scale-attention head is ``max(C // r, 4)``.
        share_weights: the branches share one kernel and differ only by dilation (as CPFNet's SAPF does;
            default True, C*C*k^D weights instead of n times that); each branch keeps its own norm.
    """

    def __init__(self, channels: int, conv_op: Type[_ConvNd], dilations: Sequence[int] = (1, 2, 3),
                 kernel_size=3, conv_bias: bool = False, norm_op=None, norm_op_kwargs: dict | None = None,
                 nonlin=None, nonlin_kwargs: dict | None = None, attention_reduction: int = 4,
                 share_weights: bool = True):
        super().__init__()
        dilations = tuple(int(d) for d in dilations)
        if len(dilations) < 1 or any(d < 1 for d in dilations):
            raise ValueError(f"dilations must be a non-empty list of ints >= 1, got {dilations}")
        if channels < 1 or attention_reduction < 1:
            raise ValueError(f"channels and attention_reduction must be >= 1, got {channels}, {attention_reduction}")
        kernel_size = maybe_convert_scalar_to_list(conv_op, kernel_size)
        if any(k % 2 == 0 for k in kernel_size):
            raise ValueError(f"kernel_size must be odd to keep the size, got {kernel_size}")
        self._conv_fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[convert_conv_op_to_dim(conv_op)]
        self.dilations = dilations
        self.share_weights = bool(share_weights)
        self.paddings = [[d * (k - 1) // 2 for k in kernel_size] for d in dilations]
        # the convs are applied functionally with each branch's dilation; padding here is for dilation 1
        self.convs = nn.ModuleList([
            conv_op(channels, channels, kernel_size, 1, [(k - 1) // 2 for k in kernel_size], bias=conv_bias)
            for _ in range(1 if self.share_weights else len(dilations))
        ])
        self.post = nn.ModuleList([_norm_nonlin(channels, norm_op, norm_op_kwargs, nonlin, nonlin_kwargs)
                                   for _ in dilations])
        hidden = max(channels // attention_reduction, 4)
        head_nonlin = nonlin(**(nonlin_kwargs or {})) if nonlin is not None else nn.ReLU()
        self.scale_attention = nn.Sequential(
            conv_op(channels, hidden, 1, 1, 0, bias=True), head_nonlin, conv_op(hidden, len(dilations), 1, 1, 0, bias=True)
        )

    def _branch(self, x: torch.Tensor, i: int) -> torch.Tensor:
        conv = self.convs[0 if self.share_weights else i]
        y = self._conv_fn(x, conv.weight, conv.bias, 1, self.paddings[i], self.dilations[i])
        return self.post[i](y)

    def forward_with_weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, C, *S) -> (out (B, C, *S), scale weights (B, n_dilations, *S), summing to 1 over dim 1)."""
        branch_outputs = [self._branch(x, i) for i in range(len(self.dilations))]
        weights = torch.softmax(self.scale_attention(torch.stack(branch_outputs, 0).sum(0)), dim=1)
        fused = sum(weights[:, i:i + 1] * b for i, b in enumerate(branch_outputs))
        return x + fused, weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, *S) -> (B, C, *S)."""
        return self.forward_with_weights(x)[0]


class ScaleAwarePyramidFusion3d(ScaleAwarePyramidFusion):
    """:class:`ScaleAwarePyramidFusion` with ``nn.Conv3d``."""

    def __init__(self, channels: int, dilations: Sequence[int] = (1, 2, 3), **kwargs):
        super().__init__(channels, nn.Conv3d, dilations, **kwargs)
