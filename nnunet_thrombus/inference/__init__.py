"""inference: predict pipeline, cascade predictor, ROI-restricted fine stage, outputs and reports.

Importing this package loads neither torch nor nnU-Net. ``DEFAULT_ROI_THRESHOLD`` is defined in
:mod:`nnunet_thrombus.model_folder` (which applies it) and re-exported here.
"""
from nnunet_thrombus.model_folder import DEFAULT_ROI_THRESHOLD  # noqa: F401
