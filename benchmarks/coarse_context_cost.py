"""Cost of the global coarse context at the paper's geometry: one whole-head coarse pass vs the per-patch branch.

Random weights, the paper's networks (features 32-64-128-256-320, strides 1-2-2-2-2, BatchNorm + LeakyReLU, CBAM +
pyramid fusion) and geometry: a fine case of 257x456x436 voxels at 0.625x0.488x0.488 mm, coarse spacing
1.08x0.844x0.844 mm (149x264x252 voxels, padded to the coarse net's stride), fine patch 96x160x160. Measured in
one run, on this machine's CPU, each part in a fresh subprocess so its peak resident memory is its own:

- ``global``: :meth:`ThrombusCascadeNet.whole_case_coarse_pass` over the whole case (the new coarse pass, once per
  case and fold): seconds, peak RSS above the idle process, and the size of the stored features (fp32);
- ``patch``: the former branch, one call per fine window (the patch resized to coarse spacing), seconds per window
  and peak RSS; times the number of windows nnU-Net's sliding window runs over the case (step 0.5) and x8 with
  mirroring, for the per-case cost the global pass replaces;
- ``sample``: sampling one window's features from a stored context (what each window pays instead);
- ``gmacs``: forward multiply-accumulates (meta device, exact conv counts) of the whole-case coarse pass, of the
  per-window branch, and of the fine network on one patch, so the costs compare on any device.

Usage::

    python benchmarks/coarse_context_cost.py              # paper geometry (about 20 GB free RAM, minutes)
    python benchmarks/coarse_context_cost.py --scale 0.5  # every size halved, for a quick look
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time

PAPER_CASE = (257, 456, 436)
PAPER_PATCH = (96, 160, 160)


def _net(n_stages=5):
    import torch
    from torch import nn

    from nnunet_thrombus.networks.cascade_net import ThrombusCascadeNet

    arch = dict(n_stages=n_stages, features_per_stage=[32, 64, 128, 256, 320][:n_stages], conv_op=nn.Conv3d,
                kernel_sizes=[[3, 3, 3]] * n_stages, strides=[[1, 1, 1]] + [[2, 2, 2]] * (n_stages - 1),
                n_conv_per_stage=[2] * n_stages, n_conv_per_stage_decoder=[2] * (n_stages - 1), conv_bias=True,
                norm_op=nn.BatchNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True}, dropout_op=None,
                dropout_op_kwargs=None, nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True})
    torch.manual_seed(0)
    return ThrombusCascadeNet(input_channels=3, num_classes=2, deep_supervision=False, **arch).eval()


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _part(which: str, case, patch) -> dict:
    import torch

    from nnunet_thrombus.networks.coarse_context import position_field

    torch.set_num_threads(2)
    net = _net()
    base = _rss_mb()
    out = {"part": which, "idle_rss_mb": round(base, 1)}
    with torch.no_grad():
        if which == "global":
            images = torch.randn(1, 2, *case)
            base = _rss_mb()
            t0 = time.perf_counter()
            ctx = net.whole_case_coarse_pass(images)
            out.update(seconds=round(time.perf_counter() - t0, 2), peak_rss_above_idle_mb=round(_rss_mb() - base),
                       coarse_shape=list(ctx.coarse_shape), padded_shape=list(ctx.padded_shape),
                       stored_features_mb=round(sum(f.numel() * 4 for f in ctx.features) / 2 ** 20, 1),
                       stored_features_fp16_mb=round(sum(f.numel() * 2 for f in ctx.features) / 2 ** 20, 1),
                       feature_shapes=[list(f.shape) for f in ctx.features])
            t0 = time.perf_counter()
            start = [max(0, (c - p) // 2) for c, p in zip(case, patch)]
            feats = net.context_features(ctx, position_field(start, patch)[None])
            out["sample_one_window_s"] = round(time.perf_counter() - t0, 3)
            out["sampled_shapes"] = [list(f.shape) for f in feats]
        else:
            x = torch.randn(1, 2, *patch)
            base = _rss_mb()
            times = []
            for _ in range(2):
                t0 = time.perf_counter()
                net.coarse_features(x)
                times.append(time.perf_counter() - t0)
            out.update(seconds_per_window=round(min(times), 2), peak_rss_above_idle_mb=round(_rss_mb() - base),
                       coarse_input=net.coarse_input_size(patch))
    return out


def _gmacs(case, patch) -> dict:
    import copy

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from nnunet_thrombus.networks.coarse_context import coarse_grid_shape, padded_shape

    net = copy.deepcopy(_net()).to("meta")

    def count(fn) -> float:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            fn()
        return round(counter.get_total_flops() / 2e9, 1)

    n = coarse_grid_shape(case, net.coarse_spacing_ratio)
    p = padded_shape(n, net.coarse_branch.total_stride)
    patch_in = torch.zeros(1, 3, *patch, device="meta")
    sizes = [[s // 2 ** k for s in patch] for k in range(4)]
    feats = [torch.zeros(1, c, *s, device="meta") for c, s in zip([32, 64, 128, 256], sizes)]
    return {"coarse_pass_whole_case": count(lambda: net.coarse_branch.forward_with_features(
                torch.zeros(1, 2, *p, device="meta"))),
            "coarse_branch_one_window": count(lambda: net.coarse_features(torch.zeros(1, 2, *patch, device="meta"))),
            "fine_net_one_window": count(lambda: net(patch_in, coarse_features=feats))}


def _windows(case, patch, step=0.5) -> int:
    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

    return math.prod(len(s) for s in compute_steps_for_sliding_window(case, patch, step))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=1.0, help="scale case and patch sizes (default 1.0: the paper)")
    ap.add_argument("--part", choices=["global", "patch"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    case = [max(16, int(round(s * args.scale / 16)) * 16) if args.scale != 1 else s for s in PAPER_CASE]
    patch = [max(16, int(round(s * args.scale / 16)) * 16) for s in PAPER_PATCH]
    if args.part:
        print(json.dumps(_part(args.part, case, patch)))
        return 0
    rows = {}
    for part in ("global", "patch"):
        res = subprocess.run([sys.executable, __file__, "--scale", str(args.scale), "--part", part],
                             capture_output=True, text=True, check=True)
        rows[part] = json.loads(res.stdout.strip().splitlines()[-1])
    n = _windows(case, patch)
    g, p = rows["global"], rows["patch"]
    macs = _gmacs(case, patch)
    print(f"GMACs (forward): whole-case coarse pass {macs['coarse_pass_whole_case']}, per-window coarse branch "
          f"{macs['coarse_branch_one_window']} (x{n} windows = {n * macs['coarse_branch_one_window']:.0f}), fine net "
          f"one window {macs['fine_net_one_window']}")
    print(f"case {case}, patch {patch}, coarse {g['coarse_shape']} (padded {g['padded_shape']}), {n} windows")
    print(json.dumps(rows, indent=1))
    print(f"global: one pass {g['seconds']} s, peak +{g['peak_rss_above_idle_mb']} MB, stored features "
          f"{g['stored_features_mb']} MB fp32 ({g['stored_features_fp16_mb']} MB fp16); one window's sampling "
          f"{g['sample_one_window_s']} s")
    per_case = p["seconds_per_window"] * n
    print(f"patch: {p['seconds_per_window']} s per window, peak +{p['peak_rss_above_idle_mb']} MB; x{n} windows = "
          f"{per_case:.1f} s per case, x8 with mirroring = {8 * per_case:.1f} s")
    print(f"ratio patch (no mirroring) / global = {per_case / g['seconds']:.2f}; with mirroring "
          f"{8 * per_case / g['seconds']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
