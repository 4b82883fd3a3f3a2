"""Coarse-stage thrombus U-Net (stage 1, ``3d_lowres``): PlainConvUNet + CBAM + scale-aware pyramid fusion.

Zhu et al. (AJNR 2023), Methods and Fig 2: a U-Net with channel and spatial attention (CBAM, Woo et
al. 2018) and a scale-aware pyramid fusion module (CPFNet, Feng et al. 2020), trained with deep
supervision. The coarse stage sees the head at coarse spacing; its fused decoder features are handed
to the fine stage (see :mod:`nnunet_thrombus.networks.fine_net` and docs/architecture.md).

Placement: CBAM after every encoder stage (including the bottleneck), pyramid fusion on the bottleneck
output; the decoder is UNetDecoder's (transposed conv, concat skip, conv stack, 1x1 seg head).
"""

from __future__ import annotations

import torch

from nnunet_thrombus.networks.unet_parts import ThrombusUNetBase


class ThrombusCoarseUNet(ThrombusUNetBase):
    """Stage-1 network. Takes nnU-Net's arch_kwargs (ops as classes or dotted strings) plus switches.

    Args:
        input_channels, n_stages, features_per_stage, conv_op, kernel_sizes, strides, n_conv_per_stage,
        num_classes, n_conv_per_stage_decoder, conv_bias, norm_op, norm_op_kwargs, dropout_op,
        dropout_op_kwargs, nonlin, nonlin_kwargs, deep_supervision, nonlin_first: as PlainConvUNet.
        use_cbam: CBAM after every encoder stage (default True).
        use_pyramid_fusion: pyramid fusion on the bottleneck (default True).
        cbam_reduction: CBAM channel-MLP ratio r (default 16); cbam_kernel_size: spatial conv k (default 7).
        pyramid_dilations: dilation rates of the pyramid branches (default (1, 2, 3)).

    With both switches off the network equals PlainConvUNet (same parameter names and count).
    ``self.decoder.deep_supervision`` can be toggled after construction (nnU-Net does).
    """

    def __init__(self, input_channels: int, n_stages: int, features_per_stage, conv_op, kernel_sizes, strides,
                 n_conv_per_stage, num_classes: int, n_conv_per_stage_decoder, conv_bias: bool = False,
                 norm_op=None, norm_op_kwargs: dict | None = None, dropout_op=None,
                 dropout_op_kwargs: dict | None = None, nonlin=None, nonlin_kwargs: dict | None = None,
                 deep_supervision: bool = False, nonlin_first: bool = False, use_cbam: bool = True,
                 use_pyramid_fusion: bool = True, cbam_reduction: int = 16, cbam_kernel_size: int = 7,
                 pyramid_dilations=(1, 2, 3)):
        super().__init__(input_channels, n_stages, features_per_stage, conv_op, kernel_sizes, strides,
                         n_conv_per_stage, num_classes, n_conv_per_stage_decoder, conv_bias, norm_op, norm_op_kwargs,
                         dropout_op, dropout_op_kwargs, nonlin, nonlin_kwargs, deep_supervision, nonlin_first,
                         use_cbam, use_pyramid_fusion, cbam_reduction, cbam_kernel_size, pyramid_dilations,
                         injected_channels=None)

    def forward(self, x: torch.Tensor):
        """x: (B, C_in, *S), S a multiple of :attr:`total_stride` -> logits (list, highest res first, or tensor)."""
        return self._forward_impl(x)[0]

    def forward_with_features(self, x: torch.Tensor) -> tuple:
        """x: (B, C_in, *S) -> (logits, features).

        ``features[k]`` is the fused decoder feature map of level k (skip + upsampled features after the
        level's conv stack), shape (B, features_per_stage[k], *S / prod(strides[:k+1])); the list is
        ordered highest resolution first and has n_stages - 1 entries (the bottleneck is not included).
        """
        return self._forward_impl(x)
