"""Evaluation: segmentation metrics, statistics, folder evaluation, plots, rater study.

Arrays are (z, y, x) as ``SimpleITK.GetArrayFromImage`` gives; spacing is (z, y, x) in mm.
Nothing here imports torch.
"""
