"""What the ``nnunet_thrombus`` command shows: log records on stderr at the level -v / -q choose, results on stdout."""
from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_thrombus.cli import main
from nnunet_thrombus.console import configure_logging, level_from_flags

STAMP = r"\d\d:\d\d:\d\d"


@pytest.fixture(autouse=True)
def _restore_levels():
    """Each test configures logging through ``main``; put the loggers back as pytest had them."""
    names = ("", "nnunet_thrombus", "dataset_conversion", "__main__")
    levels = {n: logging.getLogger(n).level for n in names}
    handlers = list(logging.getLogger().handlers)
    yield
    for n, level in levels.items():
        logging.getLogger(n).setLevel(level)
    logging.getLogger().handlers[:] = handlers


def _synth(tmp_path, *flags, folder="c"):
    return main([*flags, "synth", "-o", str(tmp_path / folder), "-n", "2", "-f", "nifti", "-t", "0"])


def test_quiet_synth_prints_nothing_but_an_error_still_shows(tmp_path, capfd):
    assert _synth(tmp_path, "-q") == 0
    assert (tmp_path / "c" / "nnUNet_raw" / "Dataset501_SynthThrombus" / "dataset.json").is_file()
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    assert _synth(tmp_path, "-q") == 2  # the folder is not empty now
    out, err = capfd.readouterr()
    assert out == ""
    assert re.fullmatch(rf"{STAMP} ERROR: nnunet_thrombus synth: output folder .* is not empty; .*--overwrite.*\n",
                        err), err


def test_a_commands_own_quiet_flag_means_the_same(tmp_path, capfd):
    assert main(["synth", "-o", str(tmp_path / "c"), "-n", "2", "-f", "nifti", "-t", "0", "-q"]) == 0
    assert capfd.readouterr() == ("", "")


def test_default_run_logs_the_info_lines_to_stderr_with_a_time(tmp_path, capfd):
    assert _synth(tmp_path) == 0
    out, err = capfd.readouterr()
    assert out == ""
    lines = [ln for ln in err.splitlines() if re.match(STAMP, ln)]
    assert re.fullmatch(rf"{STAMP} 2 cases \(2 train, 0 test\), preset tiny, seed 0", lines[0]), lines
    assert any(re.fullmatch(rf"{STAMP} [0-9.]+ s per case; nnU-Net raw dataset: .*Dataset501_SynthThrombus", ln)
               for ln in lines), lines
    assert not any("WARNING" in ln or "ERROR" in ln for ln in lines)


def test_verbose_and_quiet_exclude_each_other(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        _synth(tmp_path, "-v", "-q")
    assert exc.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_help_says_where_the_global_flags_go(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "-v, --verbose" in text and "-q, --quiet" in text and "go before the command" in text


def _masks(root, n=2):
    for sub in ("pred", "ref"):
        (root / sub).mkdir(parents=True)
    for i in range(n):
        ref = np.zeros((8, 8, 8), np.uint8)
        ref[2:5, 2:5, 2:5] = 1                 # 27 voxels
        pred = ref.copy()
        pred[2, 2, 2] = 0                      # 26 of them: Dice 52/53 = 0.981
        sitk.WriteImage(sitk.GetImageFromArray(ref), str(root / "ref" / f"C{i}.nii.gz"))
        sitk.WriteImage(sitk.GetImageFromArray(pred), str(root / "pred" / f"C{i}.nii.gz"))


def test_evaluate_table_on_stdout_progress_on_stderr_and_quiet_keeps_both_back(tmp_path, capfd):
    _masks(tmp_path)
    args = ["evaluate", "-p", str(tmp_path / "pred"), "-r", str(tmp_path / "ref"), "--no-plots", "-o"]
    assert main([*args, str(tmp_path / "ev")]) == 0
    out, err = capfd.readouterr()
    assert "| Dice (%) | 98.11" in out and not re.search(STAMP, out)
    assert re.search(rf"^{STAMP} \[2/2\] C1: Dice 0.981", err, re.M), err
    assert main(["-q", *args, str(tmp_path / "ev_quiet")]) == 0
    assert capfd.readouterr() == ("", "")
    assert "| Dice (%) | 98.11" in (tmp_path / "ev_quiet" / "summary.md").read_text()  # the table is still written


def test_env_prints_its_export_lines_even_when_quiet(capfd):
    assert main(["-q", "env", "--cpu"]) == 0
    out, err = capfd.readouterr()
    assert err == "" and "export nnUNet_compile=f" in out.splitlines()


def test_levels_format_and_other_libraries(capsys):
    assert (level_from_flags(), level_from_flags(verbose=True), level_from_flags(True, True)) == \
        (logging.INFO, logging.DEBUG, logging.ERROR)
    configure_logging(logging.DEBUG)
    configure_logging(logging.DEBUG)  # again: one handler, not two
    ours, other = logging.getLogger("nnunet_thrombus.some.module"), logging.getLogger("some_library")
    ours.debug("detail")
    ours.info("stage")
    ours.warning("odd input")
    other.info("library chatter")
    other.warning("library warning")
    err = capsys.readouterr().err.splitlines()
    assert [re.sub(STAMP, "T", ln) for ln in err] == [
        "T DEBUG [nnunet_thrombus.some.module] detail", "T stage", "T WARNING: odd input", "T WARNING: library warning"]
    configure_logging(logging.ERROR)
    ours.warning("hidden")
    other.warning("hidden too")
    ours.error("shown")
    assert [re.sub(STAMP, "T", ln) for ln in capsys.readouterr().err.splitlines()] == ["T ERROR: shown"]
