"""Apply a fitted post-processing rule (``postprocessing.json``) to a folder of predicted masks, in place.

The rule itself, its fit and its file format are :mod:`nnunet_thrombus.calibration.postprocessing`'s.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunet_thrombus.atomic_io import write_image
from nnunet_thrombus.calibration.postprocessing import Postprocessing


def _read_case_images(images_dir: Path, case: str) -> dict:
    """CTA (``_0000``), NCCT (``_0001``) and a brain mask (CTA > -1000 HU, the skull-stripped value) of ``case`` from
    an nnU-Net images folder, as (Z, Y, X) arrays; {} when the files are absent."""
    cta_path, ncct_path = images_dir / f"{case}_0000.nii.gz", images_dir / f"{case}_0001.nii.gz"
    if not (cta_path.is_file() and ncct_path.is_file()):
        return {}
    cta_img = sitk.ReadImage(str(cta_path))
    cta = sitk.GetArrayFromImage(cta_img).astype(np.float32)
    return {"cta": cta, "ncct": sitk.GetArrayFromImage(sitk.ReadImage(str(ncct_path))).astype(np.float32),
            "brain": cta > -1000, "origin": cta_img.GetOrigin(), "direction": cta_img.GetDirection()}


def apply_to_folder(folder, rule_file, images_dir=None) -> int:
    """Apply the rule stored in ``rule_file`` to every ``*.nii.gz`` mask in ``folder``, in place (each written to a
    temp name, then renamed). ``images_dir``: the nnU-Net images folder of those cases (``<case>_0000`` CTA,
    ``_0001`` NCCT) so that the density, artery and contrast tests run; without it only volume counts. Returns the
    number of masks changed; 0 and nothing touched without ``rule_file``."""
    folder, rule_file = Path(folder), Path(rule_file)
    if not rule_file.is_file():
        return 0
    rule, changed = Postprocessing.load(rule_file), 0
    for f in sorted(folder.glob("*.nii.gz")):
        img = sitk.ReadImage(str(f))
        before = sitk.GetArrayFromImage(img)
        case = f.name[: -len(".nii.gz")]
        images = _read_case_images(Path(images_dir), case) if images_dir is not None else {}
        if images and images["cta"].shape != before.shape:
            raise ValueError(f"case {case}: mask {before.shape} and images {images['cta'].shape} differ in shape; "
                             f"pass the images folder the masks were predicted from")
        after = rule.apply(before, img.GetSpacing()[::-1], **images)
        if np.array_equal(before > 0, after > 0):
            continue
        out = sitk.GetImageFromArray(after.astype(before.dtype))
        out.CopyInformation(img)
        write_image(out, f)
        changed += 1
    return changed
