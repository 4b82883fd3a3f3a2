"""Fine-stage thrombus U-Net (stage 2, ``3d_cascade_fullres``) with multi-level coarse-feature injection.

Zhu et al. (AJNR 2023): "the fused features of each layer at the coarse stage were upsampled and
concatenated to the features of the corresponding layer at the fine stage". Here "fused features of
a layer" are the coarse decoder's conv-stack outputs (see ThrombusCoarseUNet.forward_with_features)
and "the corresponding layer" is the fine decoder level of the same index k. Exactly where::

    fine decoder level k:  cat( transpconv(level k+1 output),   (B, F_k, S_k)
                                skip_k (after CBAM),             (B, F_k, S_k)
                                resample(coarse_features[k]) )   (B, Cc_k, S_k)  trilinear to S_k
                           -> StackedConvBlocks(2 F_k + Cc_k -> F_k) -> seg head k

so only the first conv of each decoder level grows (by Cc_k input channels); the encoder, the
bottleneck and the seg heads are unchanged.
"""

from __future__ import annotations

from typing import Sequence

import torch

from nnunet_thrombus.networks.unet_parts import ThrombusUNetBase


class ThrombusFineUNet(ThrombusUNetBase):
    """Stage-2 network: images + upsampled coarse prediction in, optional coarse features injected.

    Args:
        (PlainConvUNet arch kwargs and the switches of ThrombusCoarseUNet), plus
        coarse_feature_channels: channels of the injected coarse feature map per fine decoder level,
            highest resolution first (length n_stages - 1; an entry 0 skips that level), or None for no
            injection. With None, any ``coarse_features`` passed to forward are ignored and the network
            equals ThrombusCoarseUNet with the same kwargs.

    Missing coarse features (``coarse_features=None`` on a net built with channels) are replaced by
    zeros, so a trained net still runs without the coarse branch (an ablation, not a supported mode).
    """

    def __init__(self, input_channels: int, n_stages: int, features_per_stage, conv_op, kernel_sizes, strides,
                 n_conv_per_stage, num_classes: int, n_conv_per_stage_decoder, conv_bias: bool = False,
                 norm_op=None, norm_op_kwargs: dict | None = None, dropout_op=None,
                 dropout_op_kwargs: dict | None = None, nonlin=None, nonlin_kwargs: dict | None = None,
                 deep_supervision: bool = False, nonlin_first: bool = False, use_cbam: bool = True,
                 use_pyramid_fusion: bool = True, cbam_reduction: int = 16, cbam_kernel_size: int = 7,
                 pyramid_dilations=(1, 2, 3), coarse_feature_channels: Sequence[int] | None = None):
        super().__init__(input_channels, n_stages, features_per_stage, conv_op, kernel_sizes, strides,
                         n_conv_per_stage, num_classes, n_conv_per_stage_decoder, conv_bias, norm_op, norm_op_kwargs,
                         dropout_op, dropout_op_kwargs, nonlin, nonlin_kwargs, deep_supervision, nonlin_first,
                         use_cbam, use_pyramid_fusion, cbam_reduction, cbam_kernel_size, pyramid_dilations,
                         injected_channels=coarse_feature_channels)
        self.coarse_feature_channels = None if coarse_feature_channels is None else list(
            self.decoder.injected_channels)

    def forward_with_features(self, x: torch.Tensor, coarse_features: Sequence[torch.Tensor] | None = None):
        """x: (B, C_in, *S); coarse_features: n_stages - 1 maps (B, Cc_k, any size), highest res first.

        Returns (logits, fine decoder features), same conventions as ThrombusCoarseUNet.
        """
        if self.coarse_feature_channels is None:
            coarse_features = None
        return self._forward_impl(x, coarse_features)

    def forward(self, x: torch.Tensor, coarse_features: Sequence[torch.Tensor] | None = None):
        """x: (B, C_in, *S) -> logits (list highest resolution first with deep supervision, else tensor)."""
        return self.forward_with_features(x, coarse_features)[0]
