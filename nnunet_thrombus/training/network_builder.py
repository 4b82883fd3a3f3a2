"""Build the coarse or the cascade network from nnU-Net plans.

The configuration decides the stage: a configuration with a ``previous_stage`` (nnU-Net's ``3d_cascade_fullres``)
gets :class:`~nnunet_thrombus.networks.cascade_net.ThrombusCascadeNet` (fine U-Net + coarse branch with the previous
stage's architecture); any other configuration (``3d_lowres``, and ``3d_fullres`` as a single-stage variant) gets
:class:`~nnunet_thrombus.networks.coarse_net.ThrombusCoarseUNet`. Plans written by nnU-Net's own planner name
``PlainConvUNet``; plans written by ``nnunet_thrombus apply-plans`` name our classes. Both work, because both carry the
same PlainConvUNet-style keyword arguments.
"""
from __future__ import annotations

import pydoc
from dataclasses import dataclass

SWITCH_KEYS = ("use_cbam", "use_pyramid_fusion", "use_coarse_features", "freeze_coarse", "coarse_context")
_ACCEPTED_CLASSES = ("PlainConvUNet", "ThrombusCoarseUNet", "ThrombusCascadeNet", "ThrombusFineUNet")


@dataclass(frozen=True)
class NetworkSwitches:
    """Ablation switches. A switch is on only when both the trainer and the plans leave it on.

    ``coarse_context``: where the fine stage's coarse features come from, ``"global"`` (one whole-case coarse pass,
    the paper) or ``"patch"`` (the coarse branch re-run on each fine patch); the trainer's value wins."""

    use_cbam: bool = True
    use_pyramid_fusion: bool = True
    use_coarse_features: bool = True
    freeze_coarse: bool = True
    coarse_context: str = "global"

    def combined_with(self, plans_kwargs: dict) -> "NetworkSwitches":
        values = {k: bool(getattr(self, k)) and bool(plans_kwargs.get(k, True)) for k in SWITCH_KEYS
                  if k not in ("freeze_coarse", "coarse_context")}
        values["freeze_coarse"] = bool(plans_kwargs.get("freeze_coarse", self.freeze_coarse))
        values["coarse_context"] = self.coarse_context
        return NetworkSwitches(**values)


def resolve_arch_kwargs(arch_kwargs: dict, requires_import) -> dict:
    """nnU-Net's string-to-class resolution (``pydoc.locate``) for the keys listed in ``requires_import``;
    our switch keys are removed (they are passed explicitly)."""
    out = {k: v for k, v in arch_kwargs.items() if k not in SWITCH_KEYS}
    for key in requires_import:
        if out.get(key) is not None and isinstance(out[key], str):
            located = pydoc.locate(out[key])
            if located is None:
                raise ValueError(f"plans name {key}={out[key]!r}, which cannot be imported")
            out[key] = located
    return out


def _check_class_name(class_name: str, configuration_name: str) -> None:
    short = class_name.split(".")[-1]
    if short not in _ACCEPTED_CLASSES:
        raise ValueError(
            f"ThrombusCascadeTrainer builds PlainConvUNet-family networks, but the plans of configuration "
            f"{configuration_name!r} name {class_name!r}. Use nnU-Net's default planner (ExperimentPlanner) or "
            f"`nnunet_thrombus apply-plans`.")


def build_thrombus_network(plans_manager, configuration_manager, num_input_channels: int, num_output_channels: int,
                           enable_deep_supervision: bool, switches: NetworkSwitches, allow_init: bool = True):
    """Return the network for ``configuration_manager`` (see module docstring).

    ``num_input_channels`` is what nnU-Net computed: image channels, plus one channel per foreground label for a
    cascade stage (the one-hot of the previous stage's segmentation, appended after the images).
    """
    from nnunet_thrombus.networks.cascade_net import ThrombusCascadeNet
    from nnunet_thrombus.networks.coarse_net import ThrombusCoarseUNet

    cm = configuration_manager
    _check_class_name(cm.network_arch_class_name, str(cm.data_identifier))
    plans_kwargs = cm.network_arch_init_kwargs
    sw = switches.combined_with(plans_kwargs)
    arch = resolve_arch_kwargs(plans_kwargs, cm.network_arch_init_kwargs_req_import)
    arch["deep_supervision"] = enable_deep_supervision

    if cm.previous_stage_name is None:
        net = ThrombusCoarseUNet(input_channels=num_input_channels, num_classes=num_output_channels,
                                 use_cbam=sw.use_cbam, use_pyramid_fusion=sw.use_pyramid_fusion, **arch)
    else:
        prev = plans_manager.get_configuration(cm.previous_stage_name)
        _check_class_name(prev.network_arch_class_name, cm.previous_stage_name)
        coarse_arch = resolve_arch_kwargs(prev.network_arch_init_kwargs, prev.network_arch_init_kwargs_req_import)
        # the coarse branch must be the stage-1 network exactly (its checkpoint is loaded into it)
        stage1 = switches.combined_with(prev.network_arch_init_kwargs)
        coarse_arch.update(use_cbam=stage1.use_cbam, use_pyramid_fusion=stage1.use_pyramid_fusion)
        ratio = tuple(float(c) / float(f) for c, f in zip(prev.spacing, cm.spacing))
        n_seg_channels = num_output_channels - 1  # one-hot of the foreground labels of the previous stage
        net = ThrombusCascadeNet(
            input_channels=num_input_channels, num_classes=num_output_channels,
            use_cbam=sw.use_cbam, use_pyramid_fusion=sw.use_pyramid_fusion,
            use_coarse_features=sw.use_coarse_features, freeze_coarse=sw.freeze_coarse,
            coarse_context=sw.coarse_context,
            coarse_arch_kwargs=coarse_arch, num_image_channels=num_input_channels - n_seg_channels,
            coarse_spacing_ratio=ratio, **arch)
    if allow_init and hasattr(net, "initialize"):
        net.apply(net.initialize)
    return net
