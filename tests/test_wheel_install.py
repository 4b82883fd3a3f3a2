"""A wheel built from this checkout works away from it: every module imports from the installed copy, the console
script's ``apply-plans --preset cpu`` and ``--preset paper`` find their packaged presets, ``predict --help`` runs.

The wheel is built from a copy of the sources (no stale ``build/`` can leak into it), installed with
``pip install --no-deps --target SITE`` beside the dependencies this interpreter already has, and run with
``PYTHONPATH=SITE`` from a folder outside the checkout, so neither the checkout nor an editable install is found first.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

#: about 15 s on an idle machine, a minute on a busy one (pip wheel, pip install, subprocesses importing torch)
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
#: what a wheel is built from (setup.py packages these two top-level packages)
PACKAGES = ("nnunet_thrombus", "dataset_conversion")
BUILD_FILES = ("setup.py", "setup.cfg", "pyproject.toml", "MANIFEST.in", "README.md")

sys.path.insert(0, str(ROOT / "tests" / "training"))
from test_thrombus_plans import BASE  # noqa: E402  (a planned dataset's nnUNetPlans.json)

#: imports every module of both packages from the installed copy; prints {module: file or "ERROR ..."}
IMPORT_ALL = """
import importlib, json, pkgutil, sys
found = {}
for top in %r:
    package = importlib.import_module(top)
    found[top] = package.__file__
    for info in pkgutil.walk_packages(package.__path__, top + ".", onerror=lambda name: None):
        try:
            found[info.name] = importlib.import_module(info.name).__file__
        except Exception as exc:
            found[info.name] = "ERROR %%s: %%s" %% (type(exc).__name__, exc)
print(json.dumps(found))
""" % (PACKAGES,)


def _run(cmd, env, cwd, timeout=300) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}:\n{(proc.stdout + proc.stderr)[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    for name in PACKAGES:
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in BUILD_FILES:
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, src / name)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp / "dist", src],
         env, tmp)
    wheels = sorted((tmp / "dist").glob("nnunet_thrombus-*.whl"))
    assert len(wheels) == 1, wheels
    site = tmp / "site"
    _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", site, wheels[0]],
         env, tmp)
    work = tmp / "work"  # cwd of every command: outside the checkout, holds nnU-Net's folders
    for sub in ("raw", "preprocessed", "results"):
        (work / sub).mkdir(parents=True)
    env.update(PYTHONPATH=str(site), nnUNet_raw=str(work / "raw"), nnUNet_preprocessed=str(work / "preprocessed"),
               nnUNet_results=str(work / "results"))
    return {"site": site, "work": work, "env": env, "script": site / "bin" / "nnunet_thrombus"}


def test_every_module_imports_from_the_installed_wheel(installed):
    site = installed["site"].resolve()
    out = _run([sys.executable, "-c", IMPORT_ALL], installed["env"], installed["work"]).stdout
    found = json.loads(out.strip().splitlines()[-1])
    errors = {name: where for name, where in found.items() if where.startswith("ERROR")}
    assert not errors, errors
    elsewhere = {name: where for name, where in found.items() if not Path(where).resolve().is_relative_to(site)}
    assert not elsewhere, f"imported from outside the installed wheel: {elsewhere}"
    # every module of the checkout is in the wheel (a folder without __init__.py would be left out silently)
    sources = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
               for top in PACKAGES for p in (ROOT / top).rglob("*.py")}
    assert sources - set(found) == set()
    assert (site / "nnunet_thrombus" / "presets" / "paper_plans.json").is_file()


@pytest.mark.parametrize("preset, plans_name", [("cpu", "ThrombusPlans"), ("paper", "ThrombusPaperPlans")])
def test_apply_plans_finds_its_presets_in_the_wheel(installed, preset, plans_name):
    folder = installed["work"] / "preprocessed" / "Dataset501_SynthThrombus"
    folder.mkdir(exist_ok=True)
    (folder / "nnUNetPlans.json").write_text(json.dumps(BASE))
    _run([installed["script"], "apply-plans", "-d", "501", "--preset", preset, "-p", plans_name],
         installed["env"], installed["work"])
    plans = json.loads((folder / f"{plans_name}.json").read_text())
    fine = plans["configurations"]["3d_fullres"]
    assert plans["thrombus_plans"]["preset"] == preset
    if preset == "cpu":  # cpu_plans.json: features 16-32-64-128 on nnU-Net's own spacing
        assert fine["architecture"]["arch_kwargs"]["features_per_stage"] == [16, 32, 64, 128]
        assert fine["spacing"] == BASE["configurations"]["3d_fullres"]["spacing"]
    else:  # paper_plans.json: the paper's fine spacing and features
        assert fine["spacing"] == [0.625, 0.488, 0.488]
        assert fine["architecture"]["arch_kwargs"]["features_per_stage"] == [32, 64, 128, 256, 320]


def test_predict_help_runs_from_the_wheel(installed):
    out = _run([installed["script"], "predict", "--help"], installed["env"], installed["work"]).stdout
    assert "--dicom-seg" in out and "--ray-address" in out
