"""Re-exports the plugin's trainers so nnU-Net's trainer lookup (``nnUNet_extTrainer``) finds them by name."""
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

# named recipe variants (``<trainer>_cpuShort``, ...), generated for every trainer above
from nnunet_thrombus.training import recipes as _recipes  # noqa: E402

globals().update({_name: getattr(_recipes, _name) for _name in _recipes.__all__
                  if _name not in ("RECIPES", "recipe_variant")})
