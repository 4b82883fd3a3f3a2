"""Reading time of the DICOM reader (dataset_conversion.ct_reader) on a whole-head-sized series, untilted and with
12 deg gantry tilt, against SimpleITK's ImageSeriesReader on the same untilted files.

Usage: ``python benchmarks/dicom_read_speed.py [--slices 200]`` (writes the series into a temporary folder).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slices", type=int, default=200, help="number of 512x512 slices. Default: 200")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "conversion"))
    import numpy as np
    import SimpleITK as sitk
    from _pacs_export import tilted_grid, write_series

    from dataset_conversion.ct_reader import read_dicom_series

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for tilt in (0.0, 12.0):
            grid = tilted_grid((512, 512, args.slices), (0.45, 0.45, 0.625), tilt_deg=tilt)
            hu = rng.integers(-1000, 1500, (args.slices, 512, 512)).astype(np.int16)
            folder = Path(tmp) / f"tilt{tilt:g}"
            write_series(folder, hu, grid)
            t0 = time.perf_counter()
            img, _ = read_dicom_series(folder)
            ours = time.perf_counter() - t0
            line = f"512x512x{args.slices}, tilt {tilt:g} deg: ct_reader {ours:.2f} s (grid {img.GetSize()})"
            if tilt == 0:
                reader = sitk.ImageSeriesReader()
                reader.SetFileNames(sorted(str(p) for p in folder.iterdir()))
                t0 = time.perf_counter()
                reader.Execute()
                line += f", SimpleITK ImageSeriesReader {time.perf_counter() - t0:.2f} s"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
