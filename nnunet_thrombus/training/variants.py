"""Ablation variants of :class:`ThrombusCascadeTrainer` (one switch off each), for ``nnunet_thrombus benchmark``.

``_noCoarseFeatures`` changes only the fine stage, so it reuses the stage-1 results of ``ThrombusCascadeTrainer``
(checkpoint and ``predicted_next_stage``); the others change both stages and train their own stage 1.
``_plain`` switches everything off: the same parameter count as nnU-Net's PlainConvUNet (a sanity baseline).
"""
from nnunet_thrombus.training.trainer import ThrombusCascadeTrainer


class ThrombusCascadeTrainer_noCBAM(ThrombusCascadeTrainer):
    use_cbam = False


class ThrombusCascadeTrainer_noPyramidFusion(ThrombusCascadeTrainer):
    use_pyramid_fusion = False


class ThrombusCascadeTrainer_noCoarseFeatures(ThrombusCascadeTrainer):
    use_coarse_features = False
    stage1_trainer_name = "ThrombusCascadeTrainer"


class ThrombusCascadeTrainer_plain(ThrombusCascadeTrainer):
    use_cbam = False
    use_pyramid_fusion = False
    use_coarse_features = False
