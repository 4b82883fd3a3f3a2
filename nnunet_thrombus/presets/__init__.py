"""The plans presets the package ships: JSON data files beside this module, read with :mod:`importlib.resources`.

- ``paper_plans.json``: the values Zhu et al. (AJNR 2023, Methods) state: spacing of both stages (mm, z y x), patch
  (voxels, z y x), features per stage, normalisation, optimiser. ``nnunet_thrombus apply-plans --preset paper``.
- ``cpu_plans.json``: fewer features and a smaller patch for CPU runs (demo, benchmark). ``--preset cpu``.

They are package data, so an installed wheel finds them wherever it lives. The repository's top-level ``plans/``
folder holds a copy for readers; a test keeps the two equal.
"""
from __future__ import annotations

import json
from importlib import resources

#: preset name -> its JSON file in this package (the ``auto`` preset has none: it keeps nnU-Net's own choices)
PRESET_FILES = {"cpu": "cpu_plans.json", "paper": "paper_plans.json"}


def load_preset(name: str) -> dict:
    """The parsed JSON of preset ``name`` (a key of :data:`PRESET_FILES`)."""
    if name not in PRESET_FILES:
        raise ValueError(f"preset {name!r} has no JSON file; presets with one: {', '.join(sorted(PRESET_FILES))}")
    resource = resources.files(__name__) / PRESET_FILES[name]
    try:
        text = resource.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"preset file {PRESET_FILES[name]} (preset {name!r}) is missing from the installed "
                                f"package ({resource}): reinstall nnunet_thrombus") from exc
    return json.loads(text)
