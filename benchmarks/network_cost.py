"""Parameters, forward GMACs and forward+backward time of the thrombus networks vs PlainConvUNet.

Paper configuration (Zhu et al., AJNR 2023): patch 96x160x160, features 32-64-128-256-320, 3x3x3
kernels, strides 1-2-2-2-2, two convs per stage (encoder and decoder), BatchNorm + LeakyReLU, two
image channels (CTA, NCCT), two classes. The fine and cascade nets get one more input channel (the
one-hot coarse prediction), as nnU-Net's cascade gives it. Every network is measured in the same run
and printed as a ratio to PlainConvUNet with the same plans.

- GMACs: ``torch.utils.flop_counter.FlopCounterMode`` on the meta device (no memory, exact conv and
  matmul counts; elementwise ops such as the attention multiplications are not counted), FLOPs / 2.
- Time: median of ``--repeats`` training steps (forward with deep supervision, sum of the output
  means, backward) after one warm-up step, batch ``--batch``; the fine net is fed fixed random
  coarse features (so its time excludes the coarse branch), the cascade runs its frozen coarse branch.

Usage::

    python benchmarks/network_cost.py --reduced          # patch 48x80x80, about 2 min on 2 cores
    python benchmarks/network_cost.py                    # paper patch 96x160x160, batch 1 (several GB RAM)
    python benchmarks/network_cost.py --no-time          # parameters and GMACs only (seconds)
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import statistics
import time

import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nnunet_thrombus.networks.cascade_net import ThrombusCascadeNet
from nnunet_thrombus.networks.coarse_net import ThrombusCoarseUNet
from nnunet_thrombus.networks.fine_net import ThrombusFineUNet

logger = logging.getLogger(__name__)

PAPER_PATCH = (96, 160, 160)
REDUCED_PATCH = (48, 80, 80)


def paper_arch_kwargs() -> dict:
    """The paper's 3d_fullres arch_kwargs (nnU-Net names), ops as classes."""
    n = 5
    return dict(n_stages=n, features_per_stage=[32, 64, 128, 256, 320], conv_op=nn.Conv3d,
                kernel_sizes=[[3, 3, 3]] * n, strides=[[1, 1, 1]] + [[2, 2, 2]] * (n - 1), n_conv_per_stage=[2] * n,
                n_conv_per_stage_decoder=[2] * (n - 1), conv_bias=True, norm_op=nn.BatchNorm3d,
                norm_op_kwargs={"eps": 1e-5, "affine": True}, dropout_op=None, dropout_op_kwargs=None,
                nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True})


def build_networks(n_img: int = 2, num_classes: int = 2) -> dict:
    """name -> (network, number of input channels, needs fixed coarse features)."""
    arch = paper_arch_kwargs()
    n_in_fine = n_img + num_classes - 1
    coarse_channels = arch["features_per_stage"][:-1]
    return {
        "PlainConvUNet": (PlainConvUNet(input_channels=n_img, num_classes=num_classes, deep_supervision=True,
                                        **arch), n_img, False),
        "coarse net": (ThrombusCoarseUNet(input_channels=n_img, num_classes=num_classes, deep_supervision=True,
                                          **arch), n_img, False),
        "fine net": (ThrombusFineUNet(input_channels=n_in_fine, num_classes=num_classes, deep_supervision=True,
                                      coarse_feature_channels=coarse_channels, **arch), n_in_fine, True),
        "cascade (fine + frozen coarse)": (ThrombusCascadeNet(input_channels=n_in_fine, num_classes=num_classes,
                                                              deep_supervision=True, **arch), n_in_fine, False),
    }


def _inputs(net, n_in: int, with_coarse: bool, patch, batch: int, device):
    x = torch.randn(batch, n_in, *patch, device=device)
    if not with_coarse:
        return (x,)
    # the same coarse-patch size the cascade would use: ceil(size / ratio / total stride) * total stride
    coarse_patch = [math.ceil(s / r / 16) * 16 for s, r in zip(patch, (1.728, 1.7295, 1.7295))]
    feats, size = [], list(coarse_patch)
    for k, c in enumerate(net.coarse_feature_channels):
        size = [s // st for s, st in zip(size, net.encoder.strides[k])]
        feats.append(torch.randn(batch, c, *size, device=device))
    return x, feats


def forward_gmacs(net, n_in: int, with_coarse: bool, patch, batch: int) -> float:
    """Forward multiply-accumulates (GMACs) counted on the meta device."""
    meta = copy.deepcopy(net).to("meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta(*_inputs(meta, n_in, with_coarse, patch, batch, "meta"))
    return counter.get_total_flops() / 2e9


def step_seconds(entries: list, patch, batch: int, repeats: int, device) -> list[float]:
    """Median wall time of one training step (forward with deep supervision + backward) per network.

    ``entries``: (net, n_in, with_coarse) tuples. One warm-up round, then ``repeats`` rounds that step
    every network once in turn, so a change in machine load hits all networks alike.
    """
    prepared = [(net.to(device).train(), _inputs(net, n_in, with_coarse, patch, batch, device))
                for net, n_in, with_coarse in entries]
    times: list[list[float]] = [[] for _ in prepared]
    for round_ in range(repeats + 1):
        for i, (net, inputs) in enumerate(prepared):
            net.zero_grad(set_to_none=True)
            start = time.perf_counter()
            sum(o.float().mean() for o in net(*inputs)).backward()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if round_:
                times[i].append(time.perf_counter() - start)
        logger.info(f"  round {round_}{' (warm-up)' if not round_ else ''}: "
                    + ", ".join(f"{t[-1]:.2f} s" if t and round_ else "done" for t in times))
    return [statistics.median(t) for t in times]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-r", "--reduced", action="store_true",
                        help=f"patch {'x'.join(map(str, REDUCED_PATCH))} instead of the paper's "
                             f"{'x'.join(map(str, PAPER_PATCH))} (default: off)")
    parser.add_argument("-b", "--batch", type=int, default=1, help="batch size (default: 1)")
    parser.add_argument("-n", "--repeats", type=int, default=2, help="timed steps per network (default: 2)")
    parser.add_argument("-t", "--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    parser.add_argument("-d", "--device", default="cpu", help="torch device for timing (default: cpu)")
    parser.add_argument("--no-time", action="store_true", help="skip timing, parameters and GMACs only (default: off)")
    args = parser.parse_args(argv)
    from nnunet_thrombus.console import configure_logging

    configure_logging()  # progress lines on stderr; the results below are this script's stdout
    if args.batch < 1 or args.repeats < 1 or args.threads < 1:
        parser.error(f"--batch, --repeats and --threads must be >= 1, got {args.batch}, {args.repeats}, {args.threads}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    patch = REDUCED_PATCH if args.reduced else PAPER_PATCH
    device = torch.device(args.device)
    print(f"patch {'x'.join(map(str, patch))}, batch {args.batch}, features 32-64-128-256-320, BN + LeakyReLU, "
          f"device {device}, {args.threads} threads")
    networks = build_networks()
    rows = []
    for name, (net, n_in, with_coarse) in networks.items():
        total = sum(p.numel() for p in net.parameters())
        trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
        rows.append([name, total, trainable, forward_gmacs(net, n_in, with_coarse, patch, args.batch), float("nan")])
    if not args.no_time:
        seconds = step_seconds(list(networks.values()), patch, args.batch, args.repeats, device)
        for row, sec in zip(rows, seconds):
            row[4] = sec
    _, p0, _, g0, t0 = rows[0]
    print(f"\n{'network':32s} {'params':>10s} {'trainable':>10s} {'x':>6s} {'GMACs':>8s} {'x':>6s} "
          f"{'step s':>8s} {'x':>6s}")
    for name, total, trainable, gmacs, seconds in rows:
        print(f"{name:32s} {total:10d} {trainable:10d} {total / p0:6.2f} {gmacs:8.1f} {gmacs / g0:6.2f} "
              f"{seconds:8.2f} {seconds / t0:6.2f}")
    if not args.no_time:
        ratio = rows[-1][4] / t0
        print(f"\ncascade training step / PlainConvUNet = {ratio:.2f} (target <= 2.00): "
              f"{'met' if ratio <= 2.0 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
