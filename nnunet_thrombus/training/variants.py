"""Ablation variants of :class:`ThrombusCascadeTrainer` (one switch off each), for ``nnunet_thrombus benchmark``.

``_noCoarseFeatures`` changes only the fine stage, so it reuses the stage-1 results of ``ThrombusCascadeTrainer``
(checkpoint and ``predicted_next_stage``); the others change both stages and train their own stage 1.
``_patchContext`` takes the coarse features from the fine patch alone (the ablation of the global context).
``_plain`` switches everything off: the same parameter count as nnU-Net's PlainConvUNet (a sanity baseline).
"""
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_thrombus.training.network_builder import resolve_arch_kwargs
from nnunet_thrombus.training.short_run import ShortScheduleMixin
from nnunet_thrombus.training.trainer import ThrombusCascadeTrainer


class ThrombusCascadeTrainer_noCBAM(ThrombusCascadeTrainer):
    use_cbam = False


class ThrombusCascadeTrainer_noPyramidFusion(ThrombusCascadeTrainer):
    use_pyramid_fusion = False


class ThrombusCascadeTrainer_noCoarseFeatures(ThrombusCascadeTrainer):
    use_coarse_features = False
    stage1_trainer_name = "ThrombusCascadeTrainer"


class ThrombusCascadeTrainer_patchContext(ThrombusCascadeTrainer):
    """The former coarse branch: stage 1 re-run on each fine patch (resized to coarse spacing), so its features see
    only the patch's field of view. Shares stage 1 with ThrombusCascadeTrainer; nnUNetv2_predict can run it."""
    coarse_context = "patch"
    stage1_trainer_name = "ThrombusCascadeTrainer"


class ThrombusCascadeTrainer_contextSwap(ThrombusCascadeTrainer):
    """The global coarse context, but half of the training samples get another training case's context (a
    simulated coarse miss, :meth:`ThrombusCascadeTrainer.context_keys`). Shares stage 1 with
    ThrombusCascadeTrainer."""
    context_swap_probability = 0.5
    stage1_trainer_name = "ThrombusCascadeTrainer"


class ThrombusCascadeTrainer_contextSwap80(ThrombusCascadeTrainer_contextSwap):
    """:class:`ThrombusCascadeTrainer_contextSwap` with 80% of the training samples on another case's context: a
    second point on the trade-off between finding clots stage 1 missed and rejecting mimics with the context."""
    context_swap_probability = 0.8


class ThrombusCascadeTrainer_plain(ThrombusCascadeTrainer):
    use_cbam = False
    use_pyramid_fusion = False
    use_coarse_features = False


class nnUNetTrainer_envSchedule(ShortScheduleMixin, nnUNetTrainer):
    """Vanilla nnU-Net (PlainConvUNet, nnU-Net's loss and recipe) for side-by-side baselines: the same plans as our
    trainer (the ``Thrombus*`` class names in them are replaced by PlainConvUNet with the same kwargs) and the same
    run-time overrides (:mod:`~nnunet_thrombus.training.overrides`), so both train under one budget. The name is
    part of existing results folders; it predates the overrides module."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self._apply_short_schedule()

    @staticmethod
    def build_network_architecture(plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True):
        from dynamic_network_architectures.architectures.unet import PlainConvUNet

        cm = configuration_manager
        arch = resolve_arch_kwargs(cm.network_arch_init_kwargs, cm.network_arch_init_kwargs_req_import)
        net = PlainConvUNet(input_channels=num_input_channels, num_classes=num_output_channels,
                            deep_supervision=enable_deep_supervision, **arch)
        net.apply(net.initialize)
        return net
