"""How much of each clot survives in the coarse stage's training labels (small distal clots).

nnU-Net trains ``3d_lowres`` on labels resampled to the coarse spacing (one-hot, linear, then argmax: its
``resample_data_or_seg_to_shape`` with ``is_seg=True``). A clot thinner than about half a coarse voxel can vanish
from that label, and then the coarse stage is taught that it is background and the fine stage's ROI may never
visit it. For every label of a raw dataset this prints the clot volume, its voxels at the fine spacing and at the
coarse spacing of the plans (the label nnU-Net trains on), per site and size class from ``metadata.csv``.

    python benchmarks/coarse_label_survival.py --raw RAW/Dataset517_X \
        --plans PREPROCESSED/Dataset501_Y/ThrombusPlans.json
    python benchmarks/coarse_label_survival.py --raw RAW/Dataset517_X --coarse-spacing 1.728 1.557 1.557
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def coarse_voxels(label, spacing_zyx, coarse_spacing_zyx) -> int:
    """Voxels of the binary ``label`` (Z, Y, X) after nnU-Net's segmentation resampling to ``coarse_spacing_zyx``."""
    import numpy as np
    from nnunetv2.preprocessing.resampling.default_resampling import resample_data_or_seg_to_shape

    shape = np.round(np.array(label.shape) * np.array(spacing_zyx) / np.array(coarse_spacing_zyx)).astype(int)
    out = resample_data_or_seg_to_shape(label[None].astype(np.int16), shape, spacing_zyx, coarse_spacing_zyx,
                                        is_seg=True, order=1, order_z=0)
    return int((out[0] > 0).sum())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--raw", required=True, type=Path, help="raw dataset (labelsTr/labelsTs, metadata.csv). Required.")
    ap.add_argument("--plans", type=Path, default=None, help="plans JSON with 3d_lowres (or give --coarse-spacing).")
    ap.add_argument("--coarse-spacing", type=float, nargs=3, default=None,
                    help="coarse spacing z y x mm instead of --plans (e.g. the fine spacing times the paper's ratio "
                         "1.728, 1.730, 1.730).")
    ap.add_argument("-o", "--out", type=Path, default=None, help="JSON output (default: print only).")
    args = ap.parse_args(argv)

    import numpy as np
    import SimpleITK as sitk

    from nnunet_thrombus.evaluation.evaluate import read_metadata

    if (args.plans is None) == (args.coarse_spacing is None):
        ap.error("give exactly one of --plans and --coarse-spacing")
    coarse = args.coarse_spacing or json.loads(args.plans.read_text())["configurations"]["3d_lowres"]["spacing"]
    meta = read_metadata(args.raw / "metadata.csv")
    rows = []
    for f in sorted(list((args.raw / "labelsTr").glob("*.nii.gz")) + list((args.raw / "labelsTs").glob("*.nii.gz"))):
        img = sitk.ReadImage(str(f))
        lab = sitk.GetArrayFromImage(img) > 0
        if not lab.any():
            continue
        case = f.name[: -len(".nii.gz")]
        sp = img.GetSpacing()[::-1]
        rows.append({"case": case, "site": meta.get(case, {}).get("site", "?"),
                     "size_class": meta.get(case, {}).get("size_class", "?"),
                     "volume_mm3": float(lab.sum() * np.prod(sp)), "fine_voxels": int(lab.sum()),
                     "coarse_voxels": coarse_voxels(lab, sp, coarse)})
    groups = {}
    for r in rows:
        groups.setdefault(f"{r['site']} {r['size_class']}", []).append(r)
    print(f"coarse spacing {coarse} mm (z, y, x)")
    print("| group | n | median volume mm3 | median coarse voxels | clots with 0 coarse voxels |")
    print("| --- | --- | --- | --- | --- |")
    for g, rs in sorted(groups.items()):
        print(f"| {g} | {len(rs)} | {np.median([r['volume_mm3'] for r in rs]):.1f} | "
              f"{np.median([r['coarse_voxels'] for r in rs]):.0f} | {sum(r['coarse_voxels'] == 0 for r in rs)} |")
    if args.out:
        args.out.write_text(json.dumps({"coarse_spacing": coarse, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
