"""benchmarks/paired_rows.py: paired Dice difference of any two benchmark rows over the test cases with a clot."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "paired_rows.py"


def _main(argv):
    spec = importlib.util.spec_from_file_location("paired_rows", _SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main(argv)


def _write(folder: Path, dice: dict) -> None:
    folder.mkdir(parents=True)
    lines = ["case,dice,ref_present"] + [f"{c},{d},{c != 'free'}" for c, d in dice.items()]
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n")


def test_median_difference_in_points_over_clot_cases_only(tmp_path, capsys):
    _write(tmp_path / "a", {"c1": 0.9, "c2": 0.5, "c3": 0.7, "free": 0.0})
    _write(tmp_path / "b", {"c1": 0.8, "c2": 0.2, "c3": 0.7, "free": 1.0})
    assert _main([str(tmp_path), "a", "b"]) == 0
    row = capsys.readouterr().out.strip().splitlines()[-1]
    assert row.startswith("| b | +10.0 (") and row.endswith("| 3 |")  # differences 10, 30, 0 points


def test_a_row_missing_cases_is_refused(tmp_path):
    _write(tmp_path / "a", {"c1": 0.9, "c2": 0.5})
    _write(tmp_path / "b", {"c1": 0.8})
    with pytest.raises(SystemExit, match="no metrics for 1 case"):
        _main([str(tmp_path), "a", "b"])
