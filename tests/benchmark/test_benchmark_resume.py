"""``--resume`` bookkeeping and the per-configuration learning rate of the benchmark budgets."""
import sys

from nnunet_thrombus.benchmark.budgets import get_budget, select_variants
from nnunet_thrombus.benchmark.runner import chain_stages, chains, run_measured
from nnunet_thrombus.training.workflow import NnunetWorkspace


def _counting_command(counter):
    return [sys.executable, "-c", f"open({str(counter)!r}, 'a').write('x')"]


def test_resume_skips_a_recorded_step_and_keeps_its_cost(tmp_path):
    ws = NnunetWorkspace.under(tmp_path / "work")
    counter = tmp_path / "runs.txt"
    first = run_measured(ws, _counting_command(counter), "step")
    assert counter.read_text() == "x"
    again = run_measured(ws, _counting_command(counter), "step", resume=True)
    assert counter.read_text() == "x"  # not run a second time
    assert (again.seconds, again.peak_mb) == (first.seconds, first.peak_mb)
    run_measured(ws, _counting_command(counter), "step")  # without resume it runs
    assert counter.read_text() == "xx"


def test_resume_reruns_when_the_command_changed_or_failed(tmp_path):
    ws = NnunetWorkspace.under(tmp_path / "work")
    counter = tmp_path / "runs.txt"
    run_measured(ws, _counting_command(counter), "step")
    other = tmp_path / "other.txt"
    run_measured(ws, _counting_command(other), "step", resume=True)  # same log name, other command
    assert other.read_text() == "x"
    try:
        run_measured(ws, [sys.executable, "-c", "raise SystemExit(3)"], "broken")
    except RuntimeError:
        pass
    assert not (ws.log_dir / "broken.done.json").exists()  # a failed step leaves no record to resume from


def test_cpu_budget_trains_coarse_stages_at_3e3_and_fine_at_the_default():
    b = get_budget("cpu")
    assert b.lr_for("3d_lowres") == 3e-3
    assert b.lr_for("3d_fullres") is None and b.lr_for("3d_cascade_fullres") is None
    assert "3d_lowres stages 0.003" in b.describe()
    assert get_budget("smoke").lr_for("3d_lowres") is None


def test_longest_chain_first():
    ordered = sorted(chains(select_variants()), key=chain_stages, reverse=True)
    assert [v.name for v in ordered[0]] == ["ours_seed0", "ours_patchContext_seed0", "noCoarseFeatures_seed0"]
    assert chain_stages(ordered[0]) == 4 and chain_stages(ordered[-1]) == 1


def test_parallel_rows_wait_passively():
    from nnunet_thrombus.benchmark.runner import parallel_environment

    assert parallel_environment(1) == {}
    assert parallel_environment(2) == {"OMP_WAIT_POLICY": "PASSIVE"}


def test_post_processing_marker_counts_only_for_the_masks_it_saw(tmp_path):
    import os

    from nnunet_thrombus.benchmark.runner import applied_after

    marker, record = tmp_path / "postprocess_row.done", tmp_path / "predict_row.done.json"
    assert not applied_after(marker, record)
    record.write_text("{}")
    marker.write_text("3\n")
    os.utime(record, ns=(1_000_000_000, 1_000_000_000))
    os.utime(marker, ns=(2_000_000_000, 2_000_000_000))
    assert applied_after(marker, record)
    os.utime(record, ns=(3_000_000_000, 3_000_000_000))  # predicted again after the marker: apply again
    assert not applied_after(marker, record)
