"""DICOM as a PACS exports it: series chosen by meaning, stray files, gantry tilt, transfer syntaxes,
enhanced multi-frame CT. Every test writes its own files (``_pacs_export``) from the analytic phantom head."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from _pacs_export import (analytic_head, mip_of, smooth_head, tilted_grid, write_dose_report, write_localizer,
                          write_multiframe, write_series)

from dataset_conversion.ct_reader import read_dicom_series
from dataset_conversion.dicom_geometry import OUTSIDE_FOV_HU, deshear
from dataset_conversion.dicom_scan import ScanError
from dataset_conversion.series_policy import AmbiguousSeriesError

# a small head grid: 1.2 mm pixels, 1.5 mm slices; the phantom head is 124 x 144 x 100 mm
SIZE, SPACING = (112, 128, 80), (1.2, 1.2, 1.5)


@pytest.fixture(scope="module")
def head():
    grid = tilted_grid(SIZE, SPACING)
    return grid, analytic_head(grid)


def _arr(img):
    return sitk.GetArrayFromImage(img)


@pytest.mark.parametrize("primary_number,mip_number", [(3, 4), (4, 3)])
def test_primary_chosen_over_mip_localizer_and_dose_report(tmp_path, head, primary_number, mip_number):
    grid, hu = head
    folder = tmp_path / "CTA"
    write_localizer(folder, number=1)
    write_series(folder, hu, grid, number=primary_number, acq_time="101500")
    mip, mgrid = mip_of(hu, grid, slab=7)
    write_series(folder, mip, mgrid, number=mip_number, description="MIP 10mm", thickness=10.5,
                 image_type=("DERIVED", "SECONDARY", "AXIAL", "MIP"), acq_time="101500")
    write_dose_report(folder)
    img, info = read_dicom_series(folder)
    assert info["series_number"] == primary_number and info["n_slices"] == SIZE[2] and info["n_series"] == 1
    assert np.array_equal(_arr(img), hu)
    reasons = {s["series_number"]: s["reason"] for s in info["selection"]["skipped"]}
    assert set(reasons) == {1, mip_number, 999}
    assert "localizer" in reasons[1] and "mip" in reasons[mip_number] and "derived" in reasons[mip_number]
    assert "X-Ray Radiation Dose SR" in reasons[999]
    assert info["selection"]["reason"] == "the only qualifying series"


def test_a_picked_localizer_is_refused_naming_the_series_that_qualify(tmp_path, head):
    grid, hu = head
    folder = tmp_path / "CTA"
    write_localizer(folder, number=1)
    write_series(folder, hu, grid, number=3, acq_time="101500")
    with pytest.raises(ScanError, match=r"series 1 \(--cta-series\) is not a head volume: a localizer.*"
                                        r"--cta-series one of: series 3"):
        read_dicom_series(folder, series=1, flag="--cta-series")
    img, info = read_dicom_series(folder, series=3, flag="--cta-series")
    assert info["series_number"] == 3 and np.array_equal(_arr(img), hu)


def test_soft_kernel_then_thinnest_then_ambiguity(tmp_path, head):
    grid, hu = head
    folder = tmp_path / "NCCT"
    write_series(folder, hu, grid, number=2, kernel="H70h", description="Head bone", acq_time="101500")
    write_series(folder, hu, grid, number=5, kernel="H30s", description="Head soft", acq_time="101500")
    thick_grid = dict(grid, positions=grid["positions"][::2])
    write_series(folder, hu[::2], thick_grid, number=6, kernel="H30s", description="Head 3mm", acq_time="101500",
                 thickness=3.0)
    img, info = read_dicom_series(folder, multiphase=False, flag="--ncct-series")
    assert info["series_number"] == 5, info["selection"]
    reasons = {s["series_number"]: s["reason"] for s in info["selection"]["skipped"]}
    assert "preferred" in reasons[2] and "thicker" in reasons[6]
    # a second soft-kernel reconstruction identical in thickness and count: a tie, named in the error
    write_series(folder, hu, grid, number=7, kernel="J30s", description="Head soft 2", acq_time="101500")
    with pytest.raises(AmbiguousSeriesError, match=r"series 5 .*series 7 .*--ncct-series"):
        read_dicom_series(folder, multiphase=False, flag="--ncct-series")
    img, info = read_dicom_series(folder, series=7, multiphase=False)
    assert info["series_number"] == 7 and "picked with" in info["selection"]["reason"]
    reasons = {s["series_number"]: s.get("reason") for s in info["selection"]["skipped"]}
    assert set(reasons) == {2, 5, 6} and all(reasons.values())  # every other series listed with a reason
    # a second acquisition (later time) in an NCCT folder is ambiguous too
    for path in folder.glob("IM07_*"):
        path.unlink()
    write_series(folder, hu, grid, number=9, kernel="H30s", acq_time="103000")
    with pytest.raises(AmbiguousSeriesError, match="acquisitions qualify"):
        read_dicom_series(folder, series=None, multiphase=False, flag="--ncct-series")


def test_multiphase_ordered_by_time_among_qualifying_series_only(tmp_path, head):
    grid, hu = head
    folder = tmp_path / "CTA"
    mip, mgrid = mip_of(hu, grid)
    # an early MIP must not count as a phase; phases numbered against their acquisition order
    write_series(folder, mip, mgrid, number=1, image_type=("DERIVED", "SECONDARY", "AXIAL", "MIP"),
                 acq_time="100000", thickness=10.5)
    for number, time, offset in ((30, "101530", 20), (10, "101510", 0), (20, "101520", 10)):
        write_series(folder, hu + offset, grid, number=number, acq_time=time)
    img, info = read_dicom_series(folder)
    assert info["series_number"] == 20 and info["phase"] == 2 and info["n_series"] == 3
    assert np.array_equal(_arr(img), hu + 10)
    _, info1 = read_dicom_series(folder, phase=1)
    assert info1["series_number"] == 10


def test_stray_files_skipped_and_corrupt_dicom_named(tmp_path, head):
    grid, hu = head
    folder = tmp_path / "CTA"
    paths = write_series(folder, hu, grid, number=3)
    (folder / "README.TXT").write_text("Exported by PACS viewer 1.0\n")
    (folder / "VERSION").write_bytes(b"1.0")
    (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0" + b"\0" * 600)
    dicomdir = pydicom.dcmread(paths[0], stop_before_pixels=True)
    dicomdir.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    dicomdir.save_as(tmp_path / "DICOMDIR")
    (tmp_path / "DICOMDIR").rename(folder / "DICOMDIR")
    img, info = read_dicom_series(folder)
    assert np.array_equal(_arr(img), hu)
    assert sorted(info["stray_files"]) == ["DICOMDIR", "README.TXT", "Thumbs.db", "VERSION"]
    # a real DICOM file with damaged contents fails the series, naming the file
    raw = paths[5].read_bytes()
    paths[5].write_bytes(raw[:300])
    with pytest.raises(ScanError, match=paths[5].name):
        read_dicom_series(folder)


def _grid_points(img: sitk.Image) -> np.ndarray:
    """(3, n) physical points of every voxel of ``img`` in numpy (z, y, x) order."""
    nx, ny, nz = img.GetSize()
    k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    d = np.array(img.GetDirection()).reshape(3, 3) * np.array(img.GetSpacing())[None, :]
    idx = np.stack([i.ravel(), j.ravel(), k.ravel()])
    return np.asarray(img.GetOrigin())[:, None] + d @ idx


def test_gantry_tilt_resampled_matches_untilted_twin(tmp_path):
    tilt = 12.0
    size, spacing = (112, 128, 96), (1.2, 1.2, 1.5)  # z range covers the head on every tilted plane
    straight = tilted_grid(size, spacing)
    tilted = tilted_grid(size, spacing, tilt_deg=tilt)
    write_series(tmp_path / "straight", analytic_head(straight), straight)
    tilted_hu = analytic_head(tilted)
    write_series(tmp_path / "tilted", tilted_hu, tilted, tilt_tag=tilt)
    ref, _ = read_dicom_series(tmp_path / "straight")
    img, info = read_dicom_series(tmp_path / "tilted")
    assert info["tilt_corrected"] and abs(info["gantry_tilt_deg"] - tilt) < 0.05
    assert info["slice_spacing_mm"] == pytest.approx(1.5 * np.cos(np.radians(tilt)), rel=1e-4)
    d = np.array(img.GetDirection()).reshape(3, 3)
    assert np.allclose(d.T @ d, np.eye(3), atol=1e-6)  # an orthogonal grid
    twin = _arr(sitk.Resample(ref, img, sitk.Transform(), sitk.sitkLinear, -1024.0, sitk.sitkFloat32))
    truth = smooth_head(_grid_points(img)).reshape(twin.shape)
    inside = truth > -500  # inside the head
    got = _arr(img).astype(np.float64)
    corr = np.corrcoef(got[inside], twin[inside])[0, 1]
    corr_truth = np.corrcoef(got[inside], truth[inside])[0, 1]
    # stacking the tilted slices as if they were orthogonal (what a reader without tilt correction does)
    naive = sitk.GetImageFromArray(tilted_hu)
    naive.CopyInformation(img) if naive.GetSize() == img.GetSize() else None
    naive.SetSpacing(img.GetSpacing())
    naive.SetDirection(img.GetDirection())
    naive.SetOrigin([float(v) for v in tilted["positions"][0]])
    naive_on = _arr(sitk.Resample(naive, img, sitk.Transform(), sitk.sitkLinear, -1024.0, sitk.sitkFloat32))
    corr_naive = np.corrcoef(naive_on[inside], twin[inside])[0, 1]
    print(f"tilt {tilt} deg: corr vs untilted twin {corr:.4f}, vs analytic truth {corr_truth:.4f}, "
          f"uncorrected {corr_naive:.4f}")
    assert corr >= 0.99 and corr_truth >= 0.99
    assert corr_naive < 0.9


def test_tilt_deshear_equals_scipy_bilinear_up_to_the_field_edge():
    """The separable shifts give scipy's bilinear shift (mode constant, cval ``OUTSIDE_FOV_HU``) on every voxel, the
    rim of the field of view included: beyond the last measured sample the output is fill, never a blend of tissue
    and fill (a blended rim put -41 to -967 HU on 20-44 HU brain of a 12 deg tilted tiny phantom)."""
    from scipy import ndimage

    rng = np.random.default_rng(3)
    hu = rng.integers(-1000, 1500, (9, 23, 31)).astype(np.int16)
    geometry = {"dist": np.arange(9) * 1.47, "drift_mm_per_mm": np.array([0.13, -0.21])}  # mm along rows, columns
    spacing_rc = (0.9, 0.7)
    out, (u0, v0), rows_out = deshear(hu, geometry, spacing_rc)
    assert out.shape[1] == rows_out and out.shape[1:] > hu.shape[1:]
    worst, fill = 0, 0
    for k in range(hu.shape[0]):
        u, v = geometry["dist"][k] * geometry["drift_mm_per_mm"]
        ref = ndimage.affine_transform(hu[k].astype(np.float32), np.eye(2), offset=[(v0 - v) / spacing_rc[0],
                                       (u0 - u) / spacing_rc[1]], output_shape=out.shape[1:], order=1,
                                       mode="constant", cval=OUTSIDE_FOV_HU)
        worst = max(worst, int(np.abs(out[k].astype(np.int32) - np.rint(ref)).max()))
        fill += int((out[k] == OUTSIDE_FOV_HU).sum())
    assert worst <= 1  # float32 rounding at .5 only
    assert fill > 0.1 * out.size  # the sheared stack does leave fill beside every slice


def test_non_uniform_tilt_and_missing_slices_are_refused(tmp_path):
    size, spacing = (64, 72, 40), (2.0, 2.0, 1.5)
    a = tilted_grid(size, spacing, tilt_deg=12.0)
    b = tilted_grid(size, spacing, tilt_deg=18.0)
    hu = analytic_head(a)
    mixed = dict(a, positions=a["positions"][:20])
    uid = pydicom.uid.generate_uid()
    write_series(tmp_path / "mixed", hu[:20], mixed, series_uid=uid, prefix="A")
    write_series(tmp_path / "mixed", analytic_head(b)[20:], dict(b, positions=b["positions"][20:]), series_uid=uid,
                 prefix="B")
    with pytest.raises(ScanError, match="orientation changes between slices"):
        read_dicom_series(tmp_path / "mixed")
    bent = dict(a, positions=a["positions"] + np.array([3.0, 0.0, 0.0]) * (np.arange(40) >= 20)[:, None])
    write_series(tmp_path / "bent", hu, bent)
    with pytest.raises(ScanError, match="straight line"):
        read_dicom_series(tmp_path / "bent")
    keep = [k for k in range(40) if k != 17]
    write_series(tmp_path / "gap", hu[keep], dict(a, positions=a["positions"][keep]))
    with pytest.raises(ScanError, match="missing slice"):
        read_dicom_series(tmp_path / "gap")


def test_enhanced_multiframe_ct_reads_like_single_frames(tmp_path, head):
    grid, hu = head
    write_multiframe(tmp_path / "CTA" / "enhanced.dcm", hu, grid)
    (tmp_path / "CTA" / "README.TXT").write_text("stray")
    img, info = read_dicom_series(tmp_path / "CTA")
    assert info["multiframe"] and info["n_slices"] == SIZE[2]
    assert np.array_equal(_arr(img), hu)  # frames were stored in reverse order: sorted by position
    assert np.allclose(img.GetOrigin(), grid["positions"][0], atol=1e-3)
    assert np.allclose(img.GetSpacing(), (1.2, 1.2, 1.5), atol=1e-6)


def _jpeg_lossless(ds: pydicom.Dataset) -> None:
    """Re-encode ``ds`` as JPEG Lossless SV1 (process 14) with libjpeg-turbo (imagecodecs): pydicom has no encoder
    for it, and decoding goes through another library (libjpeg via pylibjpeg), so the two check each other."""
    import imagecodecs
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGLosslessSV1

    frame = imagecodecs.jpeg8_encode(ds.pixel_array, lossless=True, predictor=1)
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1


# (name, transfer syntax, largest |HU| difference allowed vs the uncompressed file, mean |HU| difference allowed
# inside the head). Lossy JPEG-LS with NEAR=2 guarantees |d| <= 2; lossy JPEG 2000 at 12:1 measured max 23 HU,
# mean 1.6 HU on this phantom (SYNTHETIC), so the tolerance is 40 HU max, 3 HU mean.
SYNTAXES = [("rle", "RLELossless", 0, 0), ("deflate", "DeflatedExplicitVRLittleEndian", 0, 0),
            ("jpeg_lossless", "JPEGLosslessSV1", 0, 0), ("jpegls_lossless", "JPEGLSLossless", 0, 0),
            ("jpegls_near_lossless", "JPEGLSNearLossless", 2, 1.5), ("j2k_lossless", "JPEG2000Lossless", 0, 0),
            ("j2k_lossy", "JPEG2000", 40, 3.0)]


@pytest.fixture(scope="module")
def uncompressed(tmp_path_factory):
    grid = tilted_grid((112, 128, 40), (1.2, 1.2, 2.5))
    folder = tmp_path_factory.mktemp("syntax") / "uncompressed"
    write_series(folder, analytic_head(grid), grid)
    return folder


@pytest.mark.parametrize("name,syntax,tolerance,mean_tolerance", SYNTAXES, ids=[s[0] for s in SYNTAXES])
def test_transfer_syntax_decodes_to_the_same_hu(uncompressed, tmp_path, name, syntax, tolerance, mean_tolerance):
    uid = getattr(pydicom.uid, syntax)
    out = tmp_path / name
    out.mkdir()
    for path in sorted(uncompressed.iterdir()):
        ds = pydicom.dcmread(path)
        if syntax == "JPEGLosslessSV1":
            _jpeg_lossless(ds)
        elif syntax == "DeflatedExplicitVRLittleEndian":
            ds.file_meta.TransferSyntaxUID = uid
        elif syntax == "JPEGLSNearLossless":
            ds.compress(uid, jls_error=tolerance, generate_instance_uid=False)
        elif syntax == "JPEG2000":
            ds.compress(uid, j2k_cr=[12], generate_instance_uid=False)
        else:
            ds.compress(uid, generate_instance_uid=False)
        ds.save_as(out / path.name, enforce_file_format=True)
    written = pydicom.dcmread(next(out.iterdir()), stop_before_pixels=True)
    assert written.file_meta.TransferSyntaxUID == uid  # really written in that syntax
    ref, _ = read_dicom_series(uncompressed)
    img, info = read_dicom_series(out)
    diff = np.abs(_arr(img).astype(np.int32) - _arr(ref).astype(np.int32))
    inside = _arr(ref) > -500
    print(f"{name}: {sum(p.stat().st_size for p in out.iterdir()) / 1e6:.2f} MB, max |dHU| {diff.max()}, "
          f"mean |dHU| in head {diff[inside].mean():.2f}")
    assert info["transfer_syntax"] == uid.name
    assert diff.max() <= tolerance
    if tolerance:
        assert diff.max() > 0  # lossy really was lossy: the tolerance is what is being tested
        assert diff[inside].mean() <= mean_tolerance
