"""Converters from trial-style NCCT + CTA folders (and the synthetic cohort) to nnU-Net raw datasets."""
