"""Shared parts of the thrombus U-Nets: attention encoder, feature-injecting decoder, common base class.

Everything here extends dynamic-network-architectures' ``PlainConvEncoder`` / ``UNetDecoder`` /
``StackedConvBlocks`` instead of rewriting them, and keeps their parameter names (``encoder.stages.*``,
``decoder.stages.*``, ``decoder.transpconvs.*``, ``decoder.seg_layers.*``), so with CBAM, pyramid
fusion and injection switched off a network has exactly PlainConvUNet's state dict.

Level numbering used throughout: level k is the resolution of encoder stage k (k = 0 is the full
input resolution). The decoder has levels 0 .. n_stages - 2; lists of per-level decoder tensors
(features, injected coarse features) are ordered **highest resolution first** (level 0 first), the
same order as nnU-Net's deep-supervision outputs.
"""

from __future__ import annotations

import pydoc
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from dynamic_network_architectures.architectures.abstract_arch import AbstractDynamicNetworkArchitectures
from dynamic_network_architectures.building_blocks.helper import convert_conv_op_to_dim
from dynamic_network_architectures.building_blocks.plain_conv_encoder import PlainConvEncoder
from dynamic_network_architectures.building_blocks.simple_conv_blocks import StackedConvBlocks
from dynamic_network_architectures.building_blocks.unet_decoder import UNetDecoder
from dynamic_network_architectures.initialization.weight_init import InitWeights_He
from torch import nn

from nnunet_thrombus.networks.cbam import CBAM
from nnunet_thrombus.networks.pyramid_fusion import ScaleAwarePyramidFusion

#: arch_kwargs keys that nnU-Net stores as dotted class paths in the plans.
DOTTED_OP_KEYS = ("conv_op", "norm_op", "dropout_op", "nonlin")


def resolve_dotted_ops(arch_kwargs: dict) -> dict:
    """Copy of ``arch_kwargs`` with dotted-string ops (``"torch.nn.modules.conv.Conv3d"``) made classes.

    Resolves the keys in :data:`DOTTED_OP_KEYS` plus any listed under ``"_kw_requires_import"`` (which is
    dropped), the way nnU-Net's ``get_network_from_plans`` does it with ``pydoc.locate``. Classes and
    ``None`` pass through. Raises ValueError for a string that names nothing importable.
    """
    kwargs = dict(arch_kwargs)
    keys = set(DOTTED_OP_KEYS) | set(kwargs.pop("_kw_requires_import", ()) or ())
    for key in sorted(keys):
        value = kwargs.get(key)
        if isinstance(value, str):
            located = pydoc.locate(value)
            if located is None:
                raise ValueError(f"arch kwarg {key}={value!r} does not name an importable class")
            kwargs[key] = located
    return kwargs


def per_stage(name: str, value, n: int) -> list:
    """Expand an int (or single entry) to ``n`` entries; a list of the wrong length raises ValueError."""
    if isinstance(value, (int, np.integer)):
        return [int(value)] * n
    value = list(value)
    if len(value) != n:
        raise ValueError(f"{name} needs {n} entries, got {len(value)}: {value}")
    return value


class AttentionPlainConvEncoder(PlainConvEncoder):
    """PlainConvEncoder with CBAM (residual form, ``x + CBAM(x)``) after every stage and pyramid fusion after the
    bottleneck stage.

    ``forward(x)`` returns the skips (one per stage, highest resolution first, bottleneck last), each
    taken *after* that stage's CBAM; the bottleneck entry is additionally passed through the pyramid
    fusion. With both switches off it is PlainConvEncoder(return_skips=True) with the same parameters.
    """

    def __init__(self, *, use_cbam: bool, use_pyramid_fusion: bool, cbam_reduction: int = 16,
                 cbam_kernel_size: int = 7, pyramid_dilations: Sequence[int] = (1, 2, 3), **encoder_kwargs):
        super().__init__(return_skips=True, **encoder_kwargs)
        self.attention = nn.ModuleList([
            CBAM(c, self.conv_op, cbam_reduction, cbam_kernel_size, residual=True) if use_cbam else nn.Identity()
            for c in self.output_channels
        ])
        if use_pyramid_fusion:
            self.bottleneck_fusion = ScaleAwarePyramidFusion(
                self.output_channels[-1], self.conv_op, pyramid_dilations, self.kernel_sizes[-1], self.conv_bias,
                self.norm_op, self.norm_op_kwargs, self.nonlin, self.nonlin_kwargs)
        else:
            self.bottleneck_fusion = nn.Identity()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: (B, C_in, *S) -> skips, entry k of shape (B, features_per_stage[k], *S / prod(strides[:k+1]))."""
        skips = []
        for s, stage in enumerate(self.stages):
            x = self.attention[s](stage(x))
            if s == len(self.stages) - 1:
                x = self.bottleneck_fusion(x)
            skips.append(x)
        return skips


class FeatureInjectionDecoder(UNetDecoder):
    """UNetDecoder whose level-k conv stack can take extra (injected) channels.

    At decoder level k the input of the conv stack is ``cat(transpconv(below), skip_k, resample(inj_k))``
    (``inj_k`` trilinearly / bilinearly resampled to the skip's size), so its first conv has
    ``2 * F_k + injected_channels[k]`` input channels; levels with 0 extra channels keep UNetDecoder's
    stack untouched. Missing injected tensors (``None``) are replaced by zeros.

    Args:
        injected_channels: per decoder level, highest resolution first (length n_stages - 1), or None.
    """

    def __init__(self, encoder: PlainConvEncoder, num_classes: int, n_conv_per_stage, deep_supervision: bool,
                 nonlin_first: bool = False, injected_channels: Sequence[int] | None = None):
        super().__init__(encoder, num_classes, n_conv_per_stage, deep_supervision, nonlin_first=nonlin_first)
        n_levels = len(encoder.output_channels) - 1
        injected = [0] * n_levels if injected_channels is None else per_stage("injected_channels", injected_channels,
                                                                              n_levels)
        if any(int(c) < 0 for c in injected):
            raise ValueError(f"injected_channels must be >= 0, got {injected}")
        self.injected_channels = [int(c) for c in injected]
        n_conv = per_stage("n_conv_per_stage_decoder", n_conv_per_stage, n_levels)
        for s in range(n_levels):
            level = n_levels - 1 - s
            extra = self.injected_channels[level]
            if extra == 0:
                continue
            skip_channels = encoder.output_channels[level]
            self.stages[s] = StackedConvBlocks(
                n_conv[s], encoder.conv_op, 2 * skip_channels + extra, skip_channels, encoder.kernel_sizes[level], 1,
                encoder.conv_bias, encoder.norm_op, encoder.norm_op_kwargs, encoder.dropout_op,
                encoder.dropout_op_kwargs, encoder.nonlin, encoder.nonlin_kwargs, nonlin_first)

    def forward_with_features(self, skips: list[torch.Tensor], injected: Sequence[torch.Tensor | None] | None = None):
        """skips: encoder outputs (bottleneck last); injected: per level, highest resolution first.

        Returns (logits, features): logits as UNetDecoder (list highest resolution first with deep
        supervision, else a tensor); features: the conv-stack outputs ("fused" skip + upsampled
        features), one per decoder level, highest resolution first, level k of shape (B, F_k, *S_k).
        """
        n_levels = len(self.stages)
        if injected is not None and len(injected) != n_levels:
            raise ValueError(f"expected {n_levels} injected feature maps (one per decoder level), got {len(injected)}")
        below = skips[-1]
        seg_outputs, features = [], []
        for s in range(n_levels):
            level = n_levels - 1 - s
            skip = skips[level]
            parts = [self.transpconvs[s](below), skip]
            extra = self.injected_channels[level]
            if extra:
                parts.append(self._resample_injected(None if injected is None else injected[level], skip, extra))
            below = self.stages[s](torch.cat(parts, 1))
            features.append(below)
            if self.deep_supervision:
                seg_outputs.append(self.seg_layers[s](below))
            elif s == n_levels - 1:
                seg_outputs.append(self.seg_layers[-1](below))
        seg_outputs, features = seg_outputs[::-1], features[::-1]
        return (seg_outputs if self.deep_supervision else seg_outputs[0]), features

    def forward(self, skips, injected=None):
        return self.forward_with_features(skips, injected)[0]

    @staticmethod
    def _resample_injected(feature: torch.Tensor | None, skip: torch.Tensor, channels: int) -> torch.Tensor:
        if feature is None:
            return skip.new_zeros((skip.shape[0], channels, *skip.shape[2:]))
        if feature.shape[1] != channels or feature.shape[0] != skip.shape[0]:
            raise ValueError(f"injected feature of shape {tuple(feature.shape)} does not match batch {skip.shape[0]} "
                             f"and {channels} channels")
        if feature.shape[2:] != skip.shape[2:]:
            mode = "trilinear" if feature.ndim == 5 else "bilinear"
            feature = F.interpolate(feature, size=skip.shape[2:], mode=mode, align_corners=False)
        return feature.to(skip.dtype)


class ThrombusUNetBase(AbstractDynamicNetworkArchitectures):
    """Common constructor of the coarse and fine nets: nnU-Net arch_kwargs plus the ablation switches."""

    def __init__(self, input_channels: int, n_stages: int, features_per_stage, conv_op, kernel_sizes, strides,
                 n_conv_per_stage, num_classes: int, n_conv_per_stage_decoder, conv_bias: bool = False,
                 norm_op=None, norm_op_kwargs: dict | None = None, dropout_op=None, dropout_op_kwargs: dict | None = None,
                 nonlin=None, nonlin_kwargs: dict | None = None, deep_supervision: bool = False,
                 nonlin_first: bool = False, use_cbam: bool = True, use_pyramid_fusion: bool = True,
                 cbam_reduction: int = 16, cbam_kernel_size: int = 7, pyramid_dilations: Sequence[int] = (1, 2, 3),
                 injected_channels: Sequence[int] | None = None):
        super().__init__()
        self.key_to_encoder = "encoder.stages"
        self.key_to_stem = "encoder.stages.0"
        self.keys_to_in_proj = ("encoder.stages.0.0.convs.0.all_modules.0", "encoder.stages.0.0.convs.0.conv")
        if int(n_stages) < 2:
            raise ValueError(f"n_stages must be >= 2, got {n_stages}")
        if int(input_channels) < 1 or int(num_classes) < 1:
            raise ValueError(f"input_channels and num_classes must be >= 1, got {input_channels}, {num_classes}")
        kw = resolve_dotted_ops(dict(conv_op=conv_op, norm_op=norm_op, dropout_op=dropout_op, nonlin=nonlin))
        convert_conv_op_to_dim(kw["conv_op"])
        self.encoder = AttentionPlainConvEncoder(
            use_cbam=use_cbam, use_pyramid_fusion=use_pyramid_fusion, cbam_reduction=cbam_reduction,
            cbam_kernel_size=cbam_kernel_size, pyramid_dilations=pyramid_dilations,
            input_channels=input_channels, n_stages=n_stages,
            features_per_stage=per_stage("features_per_stage", features_per_stage, n_stages),
            conv_op=kw["conv_op"], kernel_sizes=per_stage("kernel_sizes", kernel_sizes, n_stages),
            strides=per_stage("strides", strides, n_stages),
            n_conv_per_stage=per_stage("n_conv_per_stage", n_conv_per_stage, n_stages), conv_bias=conv_bias,
            norm_op=kw["norm_op"], norm_op_kwargs=norm_op_kwargs, dropout_op=kw["dropout_op"],
            dropout_op_kwargs=dropout_op_kwargs, nonlin=kw["nonlin"], nonlin_kwargs=nonlin_kwargs,
            nonlin_first=nonlin_first)
        self.decoder = FeatureInjectionDecoder(
            self.encoder, num_classes, per_stage("n_conv_per_stage_decoder", n_conv_per_stage_decoder, n_stages - 1),
            deep_supervision, nonlin_first, injected_channels)
        self.use_cbam, self.use_pyramid_fusion = bool(use_cbam), bool(use_pyramid_fusion)

    @property
    def decoder_feature_channels(self) -> list[int]:
        """Channels of the per-level decoder features, highest resolution first (length n_stages - 1)."""
        return list(self.encoder.output_channels[:-1])

    @property
    def total_stride(self) -> list[int]:
        """Product of the encoder strides per spatial axis; input sizes should be multiples of it."""
        return [int(v) for v in np.prod(np.array(self.encoder.strides), axis=0)]

    def _forward_impl(self, x: torch.Tensor, injected=None):
        return self.decoder.forward_with_features(self.encoder(x), injected)

    def compute_conv_feature_map_size(self, input_size) -> np.int64:
        """Rough count of stored feature-map elements (nnU-Net's VRAM estimate); attention adds ~1 map/stage."""
        if len(input_size) != convert_conv_op_to_dim(self.encoder.conv_op):
            raise ValueError(f"give the spatial size only, got {input_size}")
        total = self.encoder.compute_conv_feature_map_size(input_size)
        total += self.decoder.compute_conv_feature_map_size(input_size)
        size = list(input_size)
        for s, stride in enumerate(self.encoder.strides):
            size = [i // j for i, j in zip(size, stride)]
            n_maps = (2 if self.use_cbam else 0) + (
                2 * len(self.encoder.bottleneck_fusion.dilations) if self.use_pyramid_fusion and
                s == len(self.encoder.strides) - 1 else 0)
            total += np.int64(n_maps) * np.prod([self.encoder.output_channels[s], *size], dtype=np.int64)
        return total

    @staticmethod
    def initialize(module):
        InitWeights_He(1e-2)(module)
