"""Convolutional Block Attention Module (CBAM) for 2D and 3D feature maps.

Woo S, Park J, Lee JY, Kweon IS. CBAM: Convolutional Block Attention Module. ECCV 2018
(arXiv:1807.06521). Zhu et al. (AJNR 2023) use it as the "channel and spatial attention block" of the
coarse and fine thrombus networks.

Data flow (D = 2 or 3 spatial dimensions, S = spatial size)::

    x (B, C, *S) ──┬── avg over S ──► MLP ─┐
                   └── max over S ──► MLP ─┴─ + ─ sigmoid ─► Mc (B, C, 1..1)
    x' = x * Mc
    x' ────────────┬── mean over C ─┐
                   └── max  over C ─┴─ concat (B, 2, *S) ─ k^D conv ─ sigmoid ─► Ms (B, 1, *S)
    out = x' * Ms   (B, C, *S)            (residual=True: out = x + x' * Ms)

The MLP is shared between the two descriptors (C -> C // r -> C, ReLU in between). The dimension
follows from ``conv_op`` (``nn.Conv2d`` or ``nn.Conv3d``) as in dynamic-network-architectures.

Residual form. Woo et al. put CBAM on the residual branch of a ResNet block (``out = x + CBAM(F(x))``), so the
identity path bypasses the attention. In a plain U-Net there is no such path and every feature, skips included,
is gated by two sigmoids (about 0.25 at initialisation). ``residual=True`` restores the bypass:
``out = x * (1 + Mc * Ms)``, between x and 2x, never below the identity. Our encoders use it: with the gated form
the coarse stage never learned the thrombus (fold-0 validation Dice 0 after 1,212 iterations, training loss
never below 0) while the same network without CBAM reached 0.24 on the same data and schedule
(docs/results/benchmark_cpu.md, "CBAM placement").
"""

from __future__ import annotations

from typing import Type

import torch
from dynamic_network_architectures.building_blocks.helper import convert_conv_op_to_dim
from torch import nn
from torch.nn.modules.conv import _ConvNd


class ChannelAttention(nn.Module):
    """Channel attention of CBAM: ``Mc = sigmoid(MLP(avgpool(x)) + MLP(maxpool(x)))``.

    Args:
        channels: number of feature channels C.
        reduction: MLP reduction ratio r; the hidden width is ``max(C // r, 2)``.
    """

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        if channels < 1 or reduction < 1:
            raise ValueError(f"channels and reduction must be >= 1, got channels={channels}, reduction={reduction}")
        hidden = max(channels // reduction, 2)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, *S) -> attention map (B, C, 1, ..., 1) with values in (0, 1)."""
        spatial_dims = tuple(range(2, x.ndim))
        avg = x.mean(dim=spatial_dims)
        mx = x.amax(dim=spatial_dims)
        weights = torch.sigmoid(self.mlp(avg) + self.mlp(mx))
        return weights.reshape(*weights.shape, *([1] * len(spatial_dims)))


class SpatialAttention(nn.Module):
    """Spatial attention of CBAM: ``Ms = sigmoid(conv_k([mean_c(x), max_c(x)]))``.

    Args:
        conv_op: ``nn.Conv2d`` or ``nn.Conv3d``; sets the dimension.
        kernel_size: odd kernel size k of the conv over the two pooled maps (7 in Woo et al.).
    """

    def __init__(self, conv_op: Type[_ConvNd], kernel_size: int = 7):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 1, got {kernel_size}")
        self.conv = conv_op(2, 1, kernel_size, stride=1, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, *S) -> attention map (B, 1, *S) with values in (0, 1)."""
        pooled = torch.cat((x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)), dim=1)
        return torch.sigmoid(self.conv(pooled))


class CBAM(nn.Module):
    """Channel then spatial attention (Woo et al. 2018), any dimension given by ``conv_op``.

    Args:
        channels: number of feature channels C of the input.
        conv_op: ``nn.Conv2d`` or ``nn.Conv3d`` (as in the nnU-Net plans).
        reduction: channel-MLP reduction ratio r (hidden width ``max(C // r, 2)``), default 16.
        spatial_kernel_size: odd kernel size of the spatial-attention conv, default 7.
        residual: add the input back, ``out = x + attended`` (see the module docstring), default False.
    """

    def __init__(self, channels: int, conv_op: Type[_ConvNd], reduction: int = 16, spatial_kernel_size: int = 7,
                 residual: bool = False):
        super().__init__()
        self.residual = bool(residual)
        dim = convert_conv_op_to_dim(conv_op)
        if dim not in (2, 3):
            raise ValueError(f"CBAM supports 2D and 3D conv ops, got {conv_op} (dimension {dim})")
        self.dim = dim
        self.channel_attention = ChannelAttention(channels, reduction)
        self.spatial_attention = SpatialAttention(conv_op, spatial_kernel_size)

    def forward_with_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: (B, C, *S) -> (out (B, C, *S), channel map (B, C, 1, .., 1), spatial map (B, 1, *S))."""
        if x.ndim != self.dim + 2:
            raise ValueError(f"expected a (B, C, *S) tensor with {self.dim} spatial dims, got shape {tuple(x.shape)}")
        channel_map = self.channel_attention(x)
        attended = x * channel_map
        spatial_map = self.spatial_attention(attended)
        attended = attended * spatial_map
        return (x + attended if self.residual else attended), channel_map, spatial_map

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, *S) -> attended features (B, C, *S)."""
        return self.forward_with_maps(x)[0]


class CBAM3d(CBAM):
    """CBAM on (B, C, X, Y, Z) tensors; see :class:`CBAM`."""

    def __init__(self, channels: int, reduction: int = 16, spatial_kernel_size: int = 7, residual: bool = False):
        super().__init__(channels, nn.Conv3d, reduction, spatial_kernel_size, residual)


class CBAM2d(CBAM):
    """CBAM on (B, C, X, Y) tensors; see :class:`CBAM`."""

    def __init__(self, channels: int, reduction: int = 16, spatial_kernel_size: int = 7, residual: bool = False):
        super().__init__(channels, nn.Conv2d, reduction, spatial_kernel_size, residual)
