"""Re-exports the plugin's trainers so nnU-Net's trainer lookup (``nnUNet_extTrainer``) finds them by name."""
from nnunet_thrombus.training.recipes import (  # noqa: F401
    ThrombusCascadeTrainer_contextSwap80_cpuShort,
    ThrombusCascadeTrainer_contextSwap_cpuShort,
    ThrombusCascadeTrainer_cpuShort,
    ThrombusCascadeTrainer_noCBAM_cpuShort,
    ThrombusCascadeTrainer_noCoarseFeatures_cpuShort,
    ThrombusCascadeTrainer_noPyramidFusion_cpuShort,
    ThrombusCascadeTrainer_patchContext_cpuShort,
    ThrombusCascadeTrainer_plain_cpuShort,
    nnUNetTrainer_envSchedule_cpuShort,
)
from nnunet_thrombus.training.trainer import ThrombusCascadeTrainer  # noqa: F401
from nnunet_thrombus.training.variants import (  # noqa: F401
    ThrombusCascadeTrainer_contextSwap,
    ThrombusCascadeTrainer_contextSwap80,
    ThrombusCascadeTrainer_noCBAM,
    ThrombusCascadeTrainer_noCoarseFeatures,
    ThrombusCascadeTrainer_noPyramidFusion,
    ThrombusCascadeTrainer_patchContext,
    ThrombusCascadeTrainer_plain,
    nnUNetTrainer_envSchedule,
)
