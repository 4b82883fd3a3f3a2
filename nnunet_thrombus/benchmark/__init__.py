"""Side-by-side benchmark of vanilla nnU-Net, our cascade and its ablations (``nnunet_thrombus benchmark``)."""
