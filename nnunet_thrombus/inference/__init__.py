"""inference: predict pipeline, cascade predictor, ROI-restricted fine stage, outputs and reports.

Importing this package loads neither torch nor nnU-Net.
"""
