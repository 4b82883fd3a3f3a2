"""``predict --ncct-series/--cta-series``: a DICOM folder whose series choice is ambiguous fails with a
message that names the flag and the values to give it; with the flags, the named series are read and
``report.json`` ``input.series`` says so. Each test writes its own DICOM (``_pacs_export``: analytic phantom head)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conversion"))

from _pacs_export import analytic_head, tilted_grid, write_series  # noqa: E402
from predict_testlib import FakePredictor  # noqa: E402

from nnunet_thrombus import cli  # noqa: E402
from nnunet_thrombus.inference import pipeline  # noqa: E402
from nnunet_thrombus.inference.pipeline import read_failures  # noqa: E402

# a coarse head grid (the phantom head is 124 x 144 x 100 mm; 2.4 mm slices stay under the 2.5 mm limit): the
# one full predict (registration, skull strip) takes a few seconds
SIZE, SPACING = (72, 84, 44), (2.0, 2.0, 2.4)


@pytest.fixture(scope="module")
def ambiguous_case(tmp_path_factory) -> Path:
    """Patient folder: CTA/ with two soft-kernel reconstructions of one acquisition (series 3 and 4, equal
    thickness and count: a tie), NCCT/ with two acquisitions (series 2 at 10:15, series 8 at 10:30)."""
    grid = tilted_grid(SIZE, SPACING)
    case = tmp_path_factory.mktemp("series_flags") / "P01"
    cta = analytic_head(grid, "cta")
    write_series(case / "CTA", cta, grid, number=3, description="CTA HEAD 2.4 A", acq_time="101800")
    write_series(case / "CTA", cta, grid, number=4, description="CTA HEAD 2.4 B", kernel="J30s", acq_time="101800")
    ncct = analytic_head(grid, "ncct")
    write_series(case / "NCCT", ncct, grid, number=2, description="NCCT HEAD", acq_time="101500")
    write_series(case / "NCCT", ncct, grid, number=8, description="NCCT HEAD REPEAT", acq_time="103000")
    return case


@pytest.fixture()
def fake_model(monkeypatch):
    """``predict``'s library call with a ready FakePredictor instead of loading the -m model."""
    real = pipeline.predict_cases
    calls = []

    def with_fake(inputs, out_dir, model, outputs=None, batch=None):
        calls.append(batch)
        return real(inputs, out_dir, pipeline.ThrombusCasePredictor(FakePredictor(), model), outputs, batch)

    monkeypatch.setattr(pipeline, "predict_cases", with_fake)
    return calls


def _predict(case, out, *flags) -> int:
    return cli.main(["predict", "-i", str(case), "-o", str(out), "-m", str(out.parent / "model"), "-device", "cpu",
                     "-q", "--no-cache", *flags])


def test_ambiguity_names_the_flag_and_the_flags_pick_the_series(ambiguous_case, fake_model, tmp_path, capsys):
    out = tmp_path / "out"
    assert _predict(ambiguous_case, out) == 1
    (row,) = read_failures(out)
    msg = row["error"]
    assert row["case_id"] == "P01" and row["stage"] == "input", row
    assert "2 reconstructions of one acquisition qualify equally" in msg
    assert "series 3 'CTA HEAD 2.4 A'" in msg and "series 4 'CTA HEAD 2.4 B'" in msg
    assert "pick one with --cta-series 3 or --cta-series 4" in msg, msg
    assert not (out / "P01").exists()  # no partial output
    assert fake_model[-1].cta_series is None and fake_model[-1].ncct_series is None

    # the CTA picked, the NCCT folder's two acquisitions are the next ambiguity, named with its own flag
    assert _predict(ambiguous_case, out, "--cta-series", "4") == 1
    msg = read_failures(out)[0]["error"]
    assert "NCCT" in msg and "2 acquisitions qualify" in msg and "series 2 " in msg and "series 8 " in msg
    assert "pick one with --ncct-series 2 or --ncct-series 8" in msg, msg
    assert fake_model[-1].cta_series == "4"

    assert _predict(ambiguous_case, out, "--cta-series", "4", "--ncct-series", "8") == 0, capsys.readouterr().err
    assert fake_model[-1].ncct_series == "8" and read_failures(out) == []
    series = json.loads((out / "P01" / "report.json").read_text())["input"]["series"]
    assert series["cta"]["chosen"]["series_number"] == 4
    assert series["cta"]["reason"] == "picked with --cta-series 4"
    assert {s["series_number"]: s["reason"] for s in series["cta"]["skipped"]} == {
        3: "not the series picked (--cta-series 4)"}
    assert series["ncct"]["chosen"]["series_number"] == 8
    assert [s["series_number"] for s in series["ncct"]["skipped"]] == [2]


def test_series_flags_need_a_single_case(ambiguous_case, fake_model, tmp_path, capsys):
    out = tmp_path / "out"
    assert _predict(ambiguous_case, out, "--cta-series", "4") == 1  # one case: accepted (then the NCCT is ambiguous)
    capsys.readouterr()
    # two cases (the same folder given twice: P01 and P01-2): a SeriesNumber cannot mean the same in both
    rc = cli.main(["predict", "-i", str(ambiguous_case), str(ambiguous_case), "-o", str(tmp_path / "two"), "-m",
                   str(tmp_path / "model"), "-device", "cpu", "-q", "--no-cache", "--cta-series", "4"])
    err = capsys.readouterr().err
    assert rc == 2 and "input holds 2 cases" in err and "alone as -i" in err, err


def test_duplicate_series_numbers_are_picked_by_uid(tmp_path):
    """Two series sharing SeriesNumber 3: the message offers their SeriesInstanceUIDs, and a UID picks one."""
    from dataset_conversion.ct_reader import read_dicom_series
    from dataset_conversion.series_policy import AmbiguousSeriesError

    grid = tilted_grid((48, 56, 28), (3.0, 3.0, 2.0))
    hu = analytic_head(grid)
    uids = ("1.2.826.0.1.3680043.8.498.301", "1.2.826.0.1.3680043.8.498.302")
    for uid, prefix in zip(uids, ("A", "B")):
        write_series(tmp_path, hu, grid, number=3, series_uid=uid, prefix=prefix, acq_time="101800")
    with pytest.raises(AmbiguousSeriesError, match=f"pick one with --cta-series {uids[0]} or --cta-series {uids[1]}"):
        read_dicom_series(tmp_path)
    with pytest.raises(AmbiguousSeriesError, match=f"give the SeriesInstanceUID instead: --cta-series {uids[0]} or "):
        read_dicom_series(tmp_path, series=3)
    _, info = read_dicom_series(tmp_path, series=uids[1])
    assert info["series_uid"] == uids[1] and info["selection"]["reason"] == f"picked with --cta-series {uids[1]}"
