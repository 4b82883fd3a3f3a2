"""``predict --ray-address`` without Ray installed is refused before any work, with the install command."""
from __future__ import annotations

import importlib.util

import pytest

from nnunet_thrombus import cli


def test_ray_address_without_ray_is_refused_at_start(monkeypatch, tmp_path, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(SystemExit) as exc:
        cli.main(["predict", "-i", str(tmp_path), "-o", str(tmp_path / "out"), "-m", str(tmp_path),
                  "--ray-address", "local"])
    assert exc.value.code == 2
    assert "pip install 'nnunet_thrombus[distributed]'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
