"""Fine network plus a frozen coarse branch that gives every fine level the coarse stage's fused features.

This is the network nnU-Net trains under ``3d_cascade_fullres`` (DESIGN.md section 4). Two feature sources,
chosen by ``coarse_context``:

``"global"`` (default, the paper): the coarse branch runs ONCE over the whole case at coarse spacing
(:meth:`ThrombusCascadeNet.whole_case_coarse_pass`), and each fine patch samples those features at its voxels'
own positions (:meth:`ThrombusCascadeNet.context_features`; geometry in :mod:`nnunet_thrombus.networks.coarse_context`)::

    whole case images (1, C_img, S) ─ resize to round(S/ratio), pad ─► coarse_branch ─► CoarseContext (once)
    patch x (B, C_img + C_seg, s), positions (B, 4, s) ─► sample at each fine level ─► ThrombusFineUNet ─► logits

``"patch"`` (ablation, the former branch): the fine patch's own image channels, resized to coarse spacing, go
through the coarse branch inside every forward call, so the coarse features see nothing the patch does not::

    x ─ image channels ─ trilinear resample to S_c ─► coarse branch ─► features resampled to fine level k
                         S_c = ceil(s / ratio / stride) * stride

``ratio`` is ``coarse_spacing_ratio`` (coarse spacing / fine spacing per axis; the paper's 1.08/0.625 = 1.728 and
0.844/0.488 = 1.7295) and ``stride`` the coarse net's total stride per axis.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from typing import Sequence

import torch
import torch.nn.functional as F

from nnunet_thrombus.networks.coarse_context import (CoarseContext, fine_level_sizes, run_coarse_pass,
                                                     sample_context)
from nnunet_thrombus.networks.coarse_net import ThrombusCoarseUNet
from nnunet_thrombus.networks.fine_net import ThrombusFineUNet
from nnunet_thrombus.networks.unet_parts import resolve_dotted_ops

_PREFIXES = ("module.", "_orig_mod.")
COARSE_CONTEXTS = ("global", "patch")


def unwrap_network(network: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DDP (``.module``) and torch.compile (``._orig_mod``) wrappers."""
    while True:
        if hasattr(network, "module") and isinstance(network.module, torch.nn.Module):
            network = network.module
        elif hasattr(network, "_orig_mod"):
            network = network._orig_mod
        else:
            return network


class MissingCoarseContextError(ValueError):
    """A global-context cascade was called on a patch without the whole case's coarse features."""


class ThrombusCascadeNet(ThrombusFineUNet):
    """ThrombusFineUNet whose coarse features come from an internal, optionally frozen, coarse branch.

    Args:
        (fine-stage arch kwargs as ThrombusFineUNet, input_channels = image + one-hot seg channels), plus
        use_coarse_features: build the coarse branch and inject its features (default True). False gives
            a plain ThrombusFineUNet without coarse branch (PlainConvUNet when the other switches are off).
        coarse_arch_kwargs: stage-1 arch kwargs (the ``3d_lowres`` plans' arch_kwargs; ops as classes or
            dotted strings, resolved here). Keys not given default to the fine net's values, including
            the switches; ``input_channels``/``num_classes`` may be given but must match.
        num_image_channels: image channels at the front of x (default input_channels - (num_classes - 1)).
        coarse_spacing_ratio: coarse / fine spacing per axis (or one float), default (1.728, 1.7295, 1.7295).
        freeze_coarse: coarse branch gets requires_grad False, stays in eval mode (BN running stats) and
            runs under no_grad (default True).
        coarse_context: ``"global"`` (default: features of one whole-case coarse pass, sampled at each voxel's
            position; the caller passes them) or ``"patch"`` (the coarse branch re-runs on each patch).

    Fine level k receives coarse level min(k, n_coarse_levels - 1) (levels highest resolution first).
    """

    def __init__(self, input_channels: int, n_stages: int, features_per_stage, conv_op, kernel_sizes, strides,
                 n_conv_per_stage, num_classes: int, n_conv_per_stage_decoder, conv_bias: bool = False,
                 norm_op=None, norm_op_kwargs: dict | None = None, dropout_op=None,
                 dropout_op_kwargs: dict | None = None, nonlin=None, nonlin_kwargs: dict | None = None,
                 deep_supervision: bool = False, nonlin_first: bool = False, use_cbam: bool = True,
                 use_pyramid_fusion: bool = True, use_coarse_features: bool = True,
                 coarse_arch_kwargs: dict | None = None, num_image_channels: int | None = None,
                 coarse_spacing_ratio: float | Sequence[float] = (1.728, 1.7295, 1.7295), freeze_coarse: bool = True,
                 cbam_reduction: int = 16, cbam_kernel_size: int = 7, pyramid_dilations=(1, 2, 3),
                 coarse_context: str = "global"):
        if coarse_context not in COARSE_CONTEXTS:
            raise ValueError(f"coarse_context must be one of {COARSE_CONTEXTS}, got {coarse_context!r}")
        arch = dict(n_stages=n_stages, features_per_stage=features_per_stage, conv_op=conv_op,
                    kernel_sizes=kernel_sizes, strides=strides, n_conv_per_stage=n_conv_per_stage,
                    n_conv_per_stage_decoder=n_conv_per_stage_decoder, conv_bias=conv_bias, norm_op=norm_op,
                    norm_op_kwargs=norm_op_kwargs, dropout_op=dropout_op, dropout_op_kwargs=dropout_op_kwargs,
                    nonlin=nonlin, nonlin_kwargs=nonlin_kwargs, nonlin_first=nonlin_first, use_cbam=use_cbam,
                    use_pyramid_fusion=use_pyramid_fusion, cbam_reduction=cbam_reduction,
                    cbam_kernel_size=cbam_kernel_size, pyramid_dilations=pyramid_dilations)
        n_img = input_channels - (num_classes - 1) if num_image_channels is None else int(num_image_channels)
        if not 1 <= n_img <= input_channels:
            raise ValueError(f"num_image_channels must be in [1, input_channels={input_channels}], got {n_img} "
                             f"(num_image_channels={num_image_channels}, num_classes={num_classes})")
        coarse = None
        injected = None
        if use_coarse_features:
            coarse = self._build_coarse(arch, coarse_arch_kwargs, n_img, num_classes)
            coarse_channels = coarse.decoder_feature_channels
            injected = [coarse_channels[min(k, len(coarse_channels) - 1)] for k in range(int(n_stages) - 1)]
        super().__init__(input_channels, num_classes=num_classes, deep_supervision=deep_supervision,
                         coarse_feature_channels=injected, **resolve_dotted_ops(arch))
        self.input_channels = int(input_channels)
        self.num_image_channels = n_img
        self.use_coarse_features = bool(use_coarse_features)
        self.freeze_coarse = bool(freeze_coarse)
        self.coarse_branch = coarse
        self.coarse_context = coarse_context
        self._scoped_features = None
        dim = len(self.total_stride)
        ratio = [float(coarse_spacing_ratio)] * dim if isinstance(coarse_spacing_ratio, (int, float)) else [
            float(r) for r in coarse_spacing_ratio]
        if len(ratio) != dim or any(r <= 0 for r in ratio):
            raise ValueError(f"coarse_spacing_ratio needs {dim} positive entries, got {coarse_spacing_ratio}")
        self.coarse_spacing_ratio = ratio
        if coarse is not None and self.freeze_coarse:
            coarse.requires_grad_(False)
            coarse.eval()

    @staticmethod
    def _build_coarse(fine_arch: dict, coarse_arch_kwargs: dict | None, n_img: int, num_classes: int):
        kwargs = dict(fine_arch)
        kwargs.update(coarse_arch_kwargs or {})
        kwargs = resolve_dotted_ops(kwargs)
        for key, expected in (("input_channels", n_img), ("num_classes", num_classes)):
            given = kwargs.pop(key, expected)
            if int(given) != expected:
                raise ValueError(f"coarse_arch_kwargs[{key!r}]={given} but the cascade needs {expected}")
        kwargs.pop("deep_supervision", None)
        return ThrombusCoarseUNet(input_channels=n_img, num_classes=num_classes, deep_supervision=False, **kwargs)

    def coarse_input_size(self, spatial_size: Sequence[int]) -> list[int]:
        """Coarse-branch input size for a fine patch: ``ceil(s / ratio / stride) * stride`` per axis."""
        stride = self.coarse_branch.total_stride if self.coarse_branch is not None else self.total_stride
        return [max(t, math.ceil(s / r / t) * t) for s, r, t in zip(spatial_size, self.coarse_spacing_ratio, stride)]

    def coarse_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """images: (B, C_img, *S) at fine spacing -> coarse decoder features, highest resolution first."""
        if self.coarse_branch is None:
            raise ValueError("this ThrombusCascadeNet was built with use_coarse_features=False")
        mode = "trilinear" if images.ndim == 5 else "bilinear"
        small = F.interpolate(images, size=self.coarse_input_size(images.shape[2:]), mode=mode, align_corners=False)
        if self.freeze_coarse:
            with torch.no_grad():
                return self.coarse_branch.forward_with_features(small)[1]
        return self.coarse_branch.forward_with_features(small)[1]

    # ------------------------------------------------------------------ global context
    @property
    def uses_global_context(self) -> bool:
        return self.coarse_branch is not None and self.coarse_context == "global"

    def coarse_level_map(self) -> list[int]:
        """Coarse decoder level feeding each fine decoder level (highest resolution first)."""
        n_coarse = len(self.coarse_branch.decoder_feature_channels)
        return [min(k, n_coarse - 1) for k in range(len(self.decoder.stages))]

    def whole_case_coarse_pass(self, images: torch.Tensor) -> CoarseContext:
        """images: (1, C_img, *S), the whole fine case -> its CoarseContext (one coarse forward pass, no_grad)."""
        if self.coarse_branch is None:
            raise ValueError("this ThrombusCascadeNet was built with use_coarse_features=False: no coarse branch")
        if images.shape[1] != self.num_image_channels:
            raise ValueError(f"whole_case_coarse_pass takes the {self.num_image_channels} image channels, got "
                             f"{tuple(images.shape)}")
        return run_coarse_pass(self.coarse_branch, images, self.coarse_spacing_ratio)

    def context_features(self, contexts, positions: torch.Tensor) -> list[torch.Tensor]:
        """contexts: one CoarseContext per sample (or one for all); positions: (B, 4, *s) homogeneous fine case
        indices of the patch voxels -> per fine decoder level (B, Cc_k, *s_k), ready for ``forward``."""
        if isinstance(contexts, CoarseContext):
            contexts = [contexts] * positions.shape[0]
        sizes = fine_level_sizes(positions.shape[2:], self.encoder.strides)
        return sample_context(contexts, positions, sizes, self.coarse_level_map())

    @contextmanager
    def using_coarse_features(self, coarse_features):
        """Within the block, forward calls without ``coarse_features`` use these (for callers such as nnU-Net's
        train_step that call ``network(x)`` only)."""
        previous, self._scoped_features = self._scoped_features, coarse_features
        try:
            yield self
        finally:
            self._scoped_features = previous

    def forward_with_features(self, x: torch.Tensor, coarse_features=None):
        """x: (B, C_img + C_seg, *S) -> (logits, fine decoder features); coarse_features overrides the branch."""
        if x.shape[1] != self.input_channels:
            raise ValueError(f"expected {self.input_channels} input channels, got input of shape {tuple(x.shape)}")
        if self.coarse_branch is not None and coarse_features is None:
            if self._scoped_features is not None:
                coarse_features = self._scoped_features
            elif self.coarse_context == "patch":
                coarse = self.coarse_features(x[:, :self.num_image_channels])
                coarse_features = [coarse[min(k, len(coarse) - 1)] for k in range(len(self.decoder.stages))]
            else:
                raise MissingCoarseContextError(
                    "this fine-stage network uses the coarse stage's whole-head features (coarse_context='global'), "
                    "which a patch alone does not carry; nnU-Net's plain sliding window (nnUNetv2_predict) cannot "
                    "supply them. Predict with `nnunet_thrombus predict -i SCANS -o OUT -d DATASET -tr TRAINER -p "
                    "PLANS` (one whole-head coarse pass per case), or train the patch-context ablation "
                    "(-tr ThrombusCascadeTrainer_patchContext), which nnUNetv2_predict can run.")
        return super().forward_with_features(x, coarse_features)

    def forward(self, x: torch.Tensor, coarse_features=None):
        """x: (B, C_img + C_seg, *S) -> logits (list highest resolution first with deep supervision, else tensor)."""
        return self.forward_with_features(x, coarse_features)[0]

    def train(self, mode: bool = True):
        """As nn.Module.train, but a frozen coarse branch always stays in eval mode."""
        super().train(mode)
        if self.coarse_branch is not None and self.freeze_coarse:
            self.coarse_branch.eval()
        return self

    def load_coarse_weights(self, state_dict_or_path) -> None:
        """Load stage-1 weights into the coarse branch (strict).

        Accepts a state dict, an nnU-Net checkpoint dict (weights under ``"network_weights"``) or a path
        to such a file (``torch.load(weights_only=False)``: load trusted files only). ``module.`` and
        ``_orig_mod.`` prefixes (DDP, torch.compile) are stripped. Raises ValueError listing missing,
        unexpected and wrongly shaped keys when the checkpoint does not fit the coarse architecture.
        """
        if self.coarse_branch is None:
            raise ValueError("this ThrombusCascadeNet was built with use_coarse_features=False: no coarse branch")
        obj = state_dict_or_path
        if isinstance(obj, (str, os.PathLike)):
            obj = torch.load(obj, map_location="cpu", weights_only=False)
        if not isinstance(obj, dict):
            raise ValueError(f"expected a state dict, checkpoint dict or path, got {type(obj).__name__}")
        state = obj.get("network_weights", obj)
        cleaned = {}
        for key, value in state.items():
            while key.startswith(_PREFIXES):
                key = key.split(".", 1)[1]
            cleaned[key] = value
        own = self.coarse_branch.state_dict()
        missing = sorted(set(own) - set(cleaned))
        unexpected = sorted(set(cleaned) - set(own))
        wrong = [f"{k}: {tuple(cleaned[k].shape)} vs {tuple(own[k].shape)}" for k in sorted(set(own) & set(cleaned))
                 if tuple(cleaned[k].shape) != tuple(own[k].shape)]
        if missing or unexpected or wrong:
            raise ValueError(
                f"coarse checkpoint does not match the coarse branch architecture: {len(missing)} missing "
                f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}), {len(wrong)} with "
                f"another shape (e.g. {wrong[:3]}); check coarse_arch_kwargs against the 3d_lowres plans")
        self.coarse_branch.load_state_dict(cleaned, strict=True)
        if self.freeze_coarse:
            self.coarse_branch.requires_grad_(False)
            self.coarse_branch.eval()
