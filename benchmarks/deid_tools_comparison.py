"""How many planted identifying values survive each de-identification approach, on one CT image whose header
carries a distinct value in every attribute of PS3.15 Table E.1-1 (``tests/conversion/_planted_headers.py``), a
private element with a name and request attributes in a sequence.

Approaches: this package's allow-list copy (``nnunet_thrombus.deidentify.deidentify_sources``), and, when
installed, dicognito (``Anonymizer``) and deid (its default recipe, private tags removed). Neither is a dependency
of this package; install them into a separate environment or target folder to compare.

Usage: ``python benchmarks/deid_tools_comparison.py`` (writes its series into a temporary folder). Prints one line
per approach: values surviving / values planted, private elements left, elements left.
"""
from __future__ import annotations

import copy
import io
import sys
import tempfile
from pathlib import Path


def _survivors(ds, values) -> tuple[int, int, int]:
    buf = io.BytesIO()
    if getattr(ds, "file_meta", None) is not None and "TransferSyntaxUID" in ds.file_meta:
        ds.save_as(buf, enforce_file_format=False)
    else:
        ds.save_as(buf, implicit_vr=True, little_endian=True)
    raw = buf.getvalue()
    left = sum(1 for v in values if v.encode() in raw)
    private = sum(1 for e in ds.iterall() if e.tag.is_private)
    return left, private, sum(1 for _ in ds.iterall())


def main(argv=None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "conversion"))
    import pydicom
    from _pacs_export import analytic_head, tilted_grid, write_series
    from _planted_headers import plant_folder, text_values
    from pydicom.uid import UID_dictionary

    from nnunet_thrombus.deidentify import BASIC_PROFILE, deidentify_sources, new_key

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        grid = tilted_grid((32, 32, 4), (2.0, 2.0, 2.5))
        write_series(tmp / "plain", analytic_head(grid), grid)
        plant_folder(tmp / "plain", tmp / "planted", BASIC_PROFILE)
        path = sorted((tmp / "planted").iterdir())[0]
        src = pydicom.dcmread(str(path))
        values = {v for v in text_values(src, BASIC_PROFILE) if len(v) >= 4 and v not in UID_dictionary}
        rows = [("source header as written", _survivors(src, values))]
        rows.append(("nnunet_thrombus allow-list (minimal source)",
                     _survivors(deidentify_sources([src], new_key(), "case01").datasets[0], values)))
        try:
            from dicognito.anonymizer import Anonymizer

            ds = copy.deepcopy(src)
            Anonymizer(seed="comparison").anonymize(ds)
            rows.append(("dicognito Anonymizer (defaults)", _survivors(ds, values)))
        except ImportError:
            rows.append(("dicognito: not installed", None))
        try:
            from deid.config import DeidRecipe
            from deid.dicom import replace_identifiers

            out = tmp / "deid_out"
            out.mkdir()
            replace_identifiers(dicom_files=[str(path)], deid=DeidRecipe(), save=True, output_folder=str(out),
                                remove_private=True)
            ds = pydicom.dcmread(str(next(p for p in out.rglob("*") if p.is_file())))
            rows.append(("deid default recipe, remove_private", _survivors(ds, values)))
        except ImportError:
            rows.append(("deid: not installed", None))
    for name, counts in rows:
        if counts is None:
            print(name)
        else:
            left, private, n = counts
            print(f"{name}: {left}/{len(values)} planted values survive, {private} private elements, "
                  f"{n} elements")
    return 0


if __name__ == "__main__":
    sys.exit(main())
