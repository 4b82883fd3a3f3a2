"""Scale-aware pyramid fusion: parallel dilated convolutions fused by learned per-voxel scale weights.

After the scale-aware pyramid fusion (SAPF) module of CPFNet: Feng S, Zhao H, Shi F, et al. CPFNet:
Context Pyramid Fusion Network for Medical Image Segmentation. IEEE Trans Med Imaging 2020;39:3008-18.
Zhu et al. (AJNR 2023) use "3 parallel dilated convolutions with different dilation rates" to capture
information at several scales; CPFNet places the module at the top of the encoder, and so do we
(see docs/architecture.md).

Data flow (n = number of dilations, default 3)::

    x (B, C, *S) ─┬─ conv3 d=1 ─ norm ─ nonlin ─► b1 ─┐
                  ├─ conv3 d=2 ─ norm ─ nonlin ─► b2 ─┼─ sum ─ 1x1 conv ─ nonlin ─ 1x1 conv ─ softmax_n ─► W (B, n, *S)
                  └─ conv3 d=3 ─ norm ─ nonlin ─► b3 ─┘
    out = x + sum_i W[:, i] * b_i        (B, C, *S)   (residual path)

Default dilations (1, 2, 3): at the bottleneck of the paper's configuration (patch 96x160x160, total
stride 16 -> 6x10x10 voxels) a 3-tap kernel with dilation 3 already spans 7 voxels, more than the
6-voxel z extent, so larger rates (CPFNet's 4) would mostly read zero padding; rates without a common
factor > 1 also avoid the gridding pattern of stacked dilations (Wang et al., WACV 2018, "hybrid
dilated convolution"). dynamic-network-architectures' conv blocks fix dilation=1, so the dilated
conv-norm-nonlin unit is written here, once.
"""

from __future__ import annotations

from typing import Sequence, Type

import torch
from dynamic_network_architectures.building_blocks.helper import convert_conv_op_to_dim, maybe_convert_scalar_to_list
from torch import nn
from torch.nn.modules.conv import _ConvNd


class DilatedConvNormNonlin(nn.Module):
    """One conv (given dilation, size-keeping padding) -> norm -> nonlin; ``None`` ops are skipped."""

    def __init__(self, conv_op: Type[_ConvNd], channels: int, kernel_size, dilation: int, conv_bias: bool,
                 norm_op, norm_op_kwargs, nonlin, nonlin_kwargs):
        super().__init__()
        kernel_size = maybe_convert_scalar_to_list(conv_op, kernel_size)
        if any(k % 2 == 0 for k in kernel_size):
            raise ValueError(f"kernel_size must be odd to keep the size, got {kernel_size}")
        padding = [dilation * (k - 1) // 2 for k in kernel_size]
        ops: list[nn.Module] = [conv_op(channels, channels, kernel_size, 1, padding, dilation=dilation, bias=conv_bias)]
        if norm_op is not None:
            ops.append(norm_op(channels, **(norm_op_kwargs or {})))
        if nonlin is not None:
            ops.append(nonlin(**(nonlin_kwargs or {})))
        self.all_modules = nn.Sequential(*ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.all_modules(x)


class ScaleAwarePyramidFusion(nn.Module):
    """Parallel dilated convs fused by a softmax over scales per voxel, plus a residual path.

    Args:
        channels: input and output channels C.
        conv_op: ``nn.Conv2d`` or ``nn.Conv3d``.
        dilations: one branch per dilation rate, default (1, 2, 3).
        kernel_size: int or per-axis list of odd sizes (default 3; anisotropic plans may give [1, 3, 3]).
        conv_bias, norm_op, norm_op_kwargs, nonlin, nonlin_kwargs: as in the nnU-Net plans.
        attention_reduction: hidden width of the scale-attention head is ``max(C // r, 4)``.
    """

    def __init__(self, channels: int, conv_op: Type[_ConvNd], dilations: Sequence[int] = (1, 2, 3),
                 kernel_size=3, conv_bias: bool = False, norm_op=None, norm_op_kwargs: dict | None = None,
                 nonlin=None, nonlin_kwargs: dict | None = None, attention_reduction: int = 4):
        super().__init__()
        dilations = tuple(int(d) for d in dilations)
        if len(dilations) < 1 or any(d < 1 for d in dilations):
            raise ValueError(f"dilations must be a non-empty list of ints >= 1, got {dilations}")
        if channels < 1 or attention_reduction < 1:
            raise ValueError(f"channels and attention_reduction must be >= 1, got {channels}, {attention_reduction}")
        convert_conv_op_to_dim(conv_op)  # raises for unknown conv ops
        self.dilations = dilations
        self.branches = nn.ModuleList([
            DilatedConvNormNonlin(conv_op, channels, kernel_size, d, conv_bias, norm_op, norm_op_kwargs,
                                  nonlin, nonlin_kwargs)
            for d in dilations
        ])
        hidden = max(channels // attention_reduction, 4)
        head_nonlin = nonlin(**(nonlin_kwargs or {})) if nonlin is not None else nn.ReLU()
        self.scale_attention = nn.Sequential(
            conv_op(channels, hidden, 1, 1, 0, bias=True), head_nonlin, conv_op(hidden, len(dilations), 1, 1, 0, bias=True)
        )

    def forward_with_weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, C, *S) -> (out (B, C, *S), scale weights (B, n_dilations, *S), summing to 1 over dim 1)."""
        branch_outputs = [b(x) for b in self.branches]
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
