"""``benchmarks/gpu_check.sh`` refuses bad arguments before doing any work (the GPU run itself is not in CI)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.sh"


def _run(*args, cwd=None):
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_help_lists_the_steps():
    r = _run("--help")
    assert r.returncode == 0 and "nnunet_thrombus predict" in r.stdout and "--iters" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "unknown argument '--bogus'"),
    (["--cases", "1"], "--cases must be >= 2"),
    (["--iters", "0"], "--iters must be a positive integer"),
    (["--preset", "huge"], "--preset must be tiny, demo or paper"),
    (["--device", "tpu"], "--device must be cuda or cpu"),
])
def test_bad_arguments_exit_2_with_the_reason(args, message, tmp_path):
    r = _run("--out", str(tmp_path / "out"), *args)
    assert r.returncode == 2 and message in r.stderr
    assert not (tmp_path / "out").exists()  # nothing written


def test_refuses_a_non_empty_output_folder(tmp_path):
    (tmp_path / "old.txt").write_text("x")
    r = _run("--out", str(tmp_path), "--device", "cpu")
    assert r.returncode == 2 and "is not empty" in r.stderr
