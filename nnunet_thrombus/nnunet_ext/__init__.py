"""Folder named by ``nnUNet_extTrainer``: nnU-Net imports ``thrombus_trainers`` from here to find our trainers."""
