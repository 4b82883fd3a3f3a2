"""Tiny architectures shared by the network tests (CPU, a few thousand parameters)."""

from torch import nn


def tiny_arch(n_stages=3, features=(4, 8, 16), strides=(1, (1, 2, 2), 2), norm=nn.InstanceNorm3d, conv_bias=True):
    """arch_kwargs like nnU-Net's plans (ops as classes), without input_channels/num_classes."""
    return dict(n_stages=n_stages, features_per_stage=list(features[:n_stages]), conv_op=nn.Conv3d,
                kernel_sizes=[[3, 3, 3]] * n_stages, strides=[list(s) if isinstance(s, tuple) else s
                                                             for s in strides[:n_stages]],
                n_conv_per_stage=2, n_conv_per_stage_decoder=[1] * (n_stages - 1), conv_bias=conv_bias,
                norm_op=norm, norm_op_kwargs={"eps": 1e-5, "affine": True}, dropout_op=None, dropout_op_kwargs=None,
                nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True})


def dotted(arch):
    """The same kwargs as nnU-Net stores them in plans JSON (dotted class paths)."""
    out = dict(arch)
    for key in ("conv_op", "norm_op", "dropout_op", "nonlin"):
        if out[key] is not None:
            out[key] = f"{out[key].__module__}.{out[key].__qualname__}"
    return out


def n_params(module, trainable_only=False):
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
