"""Fine windows the ROI-restricted fine stage runs at the paper's geometry, and what planning them costs.

No network runs: for a candidate region the size of a clot (a box of the given length along x and diameter in y
and z, in mm), placed at random positions inside a paper-preset head (257x456x436 voxels of 0.625x0.488x0.488 mm,
fine patch 96x160x160, nnU-Net's step of half a patch, margin half a patch), it prints how many of the full sliding
window's windows ``ROIRestrictedPredictor`` keeps (placement ``grid``, the default, and ``crops``) and the planning
time. Together with the measured time per window (``inference_speed.py``), this says what the restriction saves on
a whole head where a GPU is not at hand.

    python benchmarks/roi_window_plan.py [--positions 20] [--seed 0]
"""
from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import numpy as np

SHAPE = (257, 456, 436)
SPACING_MM = (0.625, 0.488, 0.488)
PATCH = (96, 160, 160)
#: (name, length along x in mm, diameter in mm): a short M2 clot, an M1 clot, a long ICA clot, a diffuse coarse blob
CANDIDATES = (("M2 clot 6 mm", 6.0, 2.5), ("M1 clot 12 mm", 12.0, 3.5), ("ICA clot 25 mm", 25.0, 5.0),
              ("coarse blob 40 mm", 40.0, 20.0))


def planner(placement: str):
    from nnunet_thrombus.inference.roi_predictor import ROIRestrictedPredictor

    p = object.__new__(ROIRestrictedPredictor)  # window planning needs no network
    p.tile_step_size, p.verbose = 0.5, False
    p.configuration_manager = SimpleNamespace(patch_size=list(PATCH))
    p.margin = tuple(int(np.ceil(x / 2)) for x in PATCH)
    p.placement, p.last_tiles, p._grid_roi = placement, (0, 0), None
    return p


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--positions", type=int, default=20, help="random positions per candidate. Default: 20.")
    ap.add_argument("--seed", type=int, default=0, help="Default: 0.")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    grid, crops = planner("grid"), planner("crops")
    print(f"paper geometry {SHAPE} voxels, patch {PATCH}, margin {grid.margin}, step 0.5")
    for name, length, diameter in CANDIDATES:
        extent = [max(1, int(round(d / s))) for d, s in zip((diameter, diameter, length), SPACING_MM)]
        counts = {"grid": [], "crops": []}
        seconds = []
        full = 0
        for _ in range(args.positions):
            lo = [int(rng.integers(s // 4, 3 * s // 4 - e)) for s, e in zip(SHAPE, extent)]  # inside the brain
            roi = np.zeros(SHAPE, dtype=bool)
            roi[tuple(slice(a, a + e) for a, e in zip(lo, extent))] = True
            for key, p in (("grid", grid), ("crops", crops)):
                p.roi = roi
                t0 = time.perf_counter()
                _, _, n_run, full = p.plan_windows(SHAPE)
                if key == "grid":
                    seconds.append(time.perf_counter() - t0)
                counts[key].append(n_run)
        print(f"{name:>18} ({'x'.join(map(str, extent))} voxels): grid windows median {np.median(counts['grid']):.0f}"
              f" (range {min(counts['grid'])}-{max(counts['grid'])}) of {full}, crops median "
              f"{np.median(counts['crops']):.0f}; grid planning median {np.median(seconds):.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
