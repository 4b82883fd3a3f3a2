"""inference: predict pipeline, cascade predictor, ROI-restricted fine stage, outputs and reports.

Constants shared by the command line and the library live here, where importing them loads neither torch nor
nnU-Net.
"""

#: coarse thrombus probability above which the fine stage looks (the candidate region, grown by half a fine patch)
DEFAULT_ROI_THRESHOLD = 0.1
