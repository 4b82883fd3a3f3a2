"""nnunet_thrombus: coarse-to-fine intracranial thrombus segmentation on NCCT + CTA, as an nnU-Net v2 plugin."""

__version__ = "0.1.0"
