"""evaluate reads the converter's metadata.csv (column ``case_id``) as well as the synthetic one (``case``)."""
from __future__ import annotations

import pytest

from nnunet_thrombus.evaluation.evaluate import read_metadata


def test_case_and_case_id_columns(tmp_path):
    (tmp_path / "a.csv").write_text("case,site\nA,M1\n")
    (tmp_path / "b.csv").write_text("case_id,patient,site\nB,P1,ICA\n")
    (tmp_path / "c.csv").write_text("id,site\nC,M1\n")
    assert read_metadata(tmp_path / "a.csv")["A"]["site"] == "M1"
    row = read_metadata(tmp_path / "b.csv")["B"]
    assert row["site"] == "ICA" and row["case"] == "B"
    with pytest.raises(ValueError, match="'case' \\(or 'case_id'\\)"):
        read_metadata(tmp_path / "c.csv")
