"""Session fixtures shared by the end-to-end tests: one tiny synthetic cohort and one short-trained cascade.

The trained model is built once per test session through nnU-Net's own commands (subprocesses), in temp folders;
training, predict and benchmark tests all reuse it so CI stays within its budget.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

DATASET_ID = 501
DATASET_NAME = "Dataset501_SynthThrombus"
#: (epochs, iterations per epoch, validation iterations) for each stage of the shared model
TINY_SCHEDULE = (2, 6, 1)
#: ``.ci/run`` sets this to 1 after installing the built wheel: the tests must then import that installed copy
INSTALLED_ENV = "NNUNET_THROMBUS_TEST_INSTALLED"


def pytest_sessionstart(session):
    """With :data:`INSTALLED_ENV` set (CI), stop before any test unless both packages come from site-packages, not
    from the checkout (``python -m pytest`` puts the current folder first on ``sys.path``; ``PYTHONSAFEPATH=1``
    keeps it off). Runs in every xdist worker too."""
    import os
    import sysconfig

    if os.environ.get(INSTALLED_ENV) != "1":
        return
    import dataset_conversion
    import nnunet_thrombus

    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    wrong = {m.__name__: m.__file__ for m in (nnunet_thrombus, dataset_conversion)
             if not Path(m.__file__).resolve().is_relative_to(site)}
    if wrong:
        raise pytest.UsageError(f"{INSTALLED_ENV}=1 but these packages are not the installed ones under {site}: "
                                f"{wrong}; run pytest with PYTHONSAFEPATH=1 from the venv that has the wheel")


@pytest.fixture(scope="session", autouse=True)
def _preprocess_cache_in_temp(tmp_path_factory):
    """``nnunet_thrombus predict`` caches registration under ~/.cache by default; tests (and the commands they
    start) use a temp folder instead."""
    import os

    from nnunet_thrombus.inference.preprocess_cache import CACHE_ENV

    old = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("preprocess_cache"))
    yield
    if old is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = old


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory) -> dict:
    from nnunet_thrombus.synthetic.cohort import CohortSpec, write_cohort

    root = tmp_path_factory.mktemp("tiny_cohort")
    summary = write_cohort(root / "synth", CohortSpec(10, seed=7, preset="tiny", dataset_id=DATASET_ID, n_test=3),
                           formats=("dicom", "nifti"), progress=False)
    return {"root": root, "synth": root / "synth", "summary": summary,
            "raw": root / "synth" / "nnUNet_raw", "dataset": root / "synth" / "nnUNet_raw" / DATASET_NAME}


@pytest.fixture(scope="session")
def tiny_plans(tiny_cohort) -> dict:
    """Plan (cpu preset, tiny network) and preprocess the tiny cohort: {"ws", "plan_s", "cohort"}."""
    from nnunet_thrombus.training.workflow import NnunetWorkspace, plan_and_preprocess

    ws = NnunetWorkspace.under(tiny_cohort["root"] / "work", raw=tiny_cohort["raw"])
    # coarse spacing "ratio": on these 1.5 mm phantoms the default ("paper", capped at the fine spacing) would put
    # stage 1 on the fine grid; the ratio keeps a real coarse-to-fine resampling under test (the card test runs the
    # default)
    seconds = plan_and_preprocess(ws, DATASET_ID, preset="cpu", features=(8, 16, 32), patch_size=(32, 48, 48),
                                  coarse_spacing="ratio")
    return {"ws": ws, "plan_s": seconds, "cohort": tiny_cohort}


@pytest.fixture(scope="session")
def tiny_cascade(tiny_plans) -> dict:
    """``tiny_plans``, then train 3d_lowres and 3d_cascade_fullres on fold 0."""
    from nnunet_thrombus.training.workflow import model_folder, short_schedule, train_cascade

    ws = tiny_plans["ws"]
    times = {"plan": tiny_plans["plan_s"]}
    tiny = short_schedule(*TINY_SCHEDULE)
    times.update(train_cascade(ws, DATASET_ID, 0, coarse=tiny, fine=tiny))
    return {"ws": ws, "times": times, "cohort": tiny_plans["cohort"],
            "coarse_dir": model_folder(ws, DATASET_NAME, "3d_lowres"),
            "fine_dir": model_folder(ws, DATASET_NAME, "3d_cascade_fullres"),
            "plans": json.loads((ws.preprocessed / DATASET_NAME / "ThrombusPlans.json").read_text())}


def pytest_collection_modifyitems(config, items):
    """Longest first, so that the two xdist workers (pytest.ini) finish together: the smoke benchmark and the
    modules of the shared trained cascade, then the other slow end-to-end tests, then the fast ones."""
    def rank(item):
        module = item.nodeid.split("::", 1)[0]
        if module == SMOKE_BENCHMARK or module in TINY_CASCADE_MODULES:
            return 0
        return 1 if item.get_closest_marker("slow") is not None else 2

    items.sort(key=rank)


#: modules whose tests use the session's trained cascade (``tiny_cascade``): one xdist worker runs them all
TINY_CASCADE_MODULES = ("tests/training/test_cascade_nnunet_e2e.py", "tests/inference/test_predict_scale_out.py",
                        "tests/inference/test_predict_e2e.py", "tests/pacs/test_serve_trained_model.py")
#: the longest module of its own (about 12 min on 2 cores); it needs only ``tiny_plans``, so it can run beside them
SMOKE_BENCHMARK = "tests/benchmark/test_benchmark_smoke.py"


def pytest_xdist_make_scheduler(config, log):
    """pytest.ini runs two xdist workers. Tests go out by module (module-scoped fixtures are built once), and the
    modules of :data:`TINY_CASCADE_MODULES` go to one worker together, so the shared cascade is trained once.
    (xdist's own ``--dist loadgroup`` marks do not group under pytest 9.)"""
    from xdist.scheduler import LoadScopeScheduling

    class _Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.split("::", 1)[0] in TINY_CASCADE_MODULES:
                return "tiny_cascade"
            return super()._split_scope(nodeid)

    return _Scheduling(config, log)
