"""Per-epoch progress records from nnU-Net's training output: the parser on a fake log, and the file follower."""
from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import pytest

from nnunet_thrombus.training.epoch_progress import EpochProgress, follow_log, parse_dice

#: what nnU-Net 2.8 prints for two epochs (numpy 2 scalars in the Dice list), with the lines around them
FAKE_LOG = textwrap.dedent("""\
    $ nnUNetv2_train 501 3d_lowres 0 -tr ThrombusCascadeTrainer
    2026-12-07 10:00:00.000001: Using torch.compile: False
    2026-12-07 10:00:00.000002: 
    2026-12-07 10:00:00.000003: Epoch 0
    2026-12-07 10:00:00.000004: Current learning rate: 0.003
    2026-12-07 10:00:12.000000: train_loss -0.1234
    2026-12-07 10:00:12.000001: val_loss 0.0567
    2026-12-07 10:00:12.000002: Pseudo dice [np.float32(0.25), np.float32(0.75)]
    2026-12-07 10:00:12.000003: Epoch time: 12.04 s
    2026-12-07 10:00:12.000004: Yayy! New best EMA pseudo Dice: 0.5
    2026-12-07 10:00:12.000005: 
    2026-12-07 10:00:12.000006: Epoch 1
    2026-12-07 10:00:12.000007: Current learning rate: 0.00155
    2026-12-07 10:00:20.000000: train_loss -0.4321
    2026-12-07 10:00:20.000001: val_loss -0.3
    2026-12-07 10:00:20.000002: Pseudo dice [np.float32(nan)]
    2026-12-07 10:00:20.000003: Epoch time: 7.96 s
    2026-12-07 10:00:20.000004: Training done.
    """)


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_one_record_per_epoch_with_losses_dice_time_and_eta(caplog):
    caplog.set_level(logging.INFO, logger="nnunet_thrombus")
    clock = FakeClock()
    progress = EpochProgress("coarse", total_epochs=3, clock=clock)
    got = []
    for i, line in enumerate(FAKE_LOG.splitlines(keepends=True)):
        clock.now = 100.0 + 6.0 * i                    # 6 s per line: epoch 1 ends at line 8 (48 s), epoch 2 at 16
        got.append(progress(line))
    records = [g for g in got if g is not None]
    assert records == [
        "coarse: epoch 1/3, train loss -0.1234, val loss 0.0567, pseudo Dice 0.500, 12.0 s, elapsed 0.8 min, "
        "ETA 1.6 min",
        # a NaN Dice (no foreground in the validation batches) is left out, not averaged in
        "coarse: epoch 2/3, train loss -0.4321, val loss -0.3000, 8.0 s, elapsed 1.6 min, ETA 0.8 min"]
    assert got.index(records[0]) == 8 and got.index(records[1]) == 16   # logged on the "Epoch time" line
    assert [r.getMessage() for r in caplog.records] == records and {r.levelno for r in caplog.records} == {logging.INFO}
    assert progress.lines == records


def test_without_a_total_no_eta_and_an_unnumbered_epoch_counts_on():
    progress = EpochProgress("fine")
    assert progress("Epoch time: 3.5 s") == "fine: epoch 1, 3.5 s, elapsed 0.0 min"
    assert progress("x: Epoch time: 4 s").startswith("fine: epoch 2, 4.0 s")
    assert progress("Epoch 12") is None and progress("the Epoch 3 of another tool said") is None
    assert progress("Epoch time: 1 s").startswith("fine: epoch 13, ")


@pytest.mark.parametrize("text, expected", [
    ("[np.float32(0.5123)]", [0.5123]),
    ("[0.1, 0.2]", [0.1, 0.2]),
    ("[np.float64(1e-05), np.float32(0.0)]", [1e-05, 0.0]),
    ("[]", []),
])
def test_parse_dice(text, expected):
    assert parse_dice(text) == expected


def test_follow_log_delivers_the_lines_a_subprocess_appends(tmp_path):
    """A child writes the fake log into the file (as nnUNetv2_train writes into ws.run's log), in pieces with pauses
    and a last line without newline; the follower sees every line written after it started, in order, and none
    written before."""
    log = tmp_path / "train.log"
    log.write_text("written before: not delivered\n")
    child = ("import sys, time\n"
             "lines = sys.stdin.read().splitlines(keepends=True)\n"
             "for i, ln in enumerate(lines):\n"
             "    sys.stdout.write(ln if i < len(lines) - 1 else ln.rstrip('\\n'))\n"
             "    sys.stdout.flush()\n"
             "    if i % 6 == 0: time.sleep(0.05)\n")
    seen = []
    with open(log, "a") as fh, follow_log(log, seen.append, interval=0.02):
        subprocess.run([sys.executable, "-c", child], input=FAKE_LOG, text=True, stdout=fh, check=True)
    assert seen == FAKE_LOG.splitlines()


def test_follow_log_survives_a_failing_callback_and_none_is_a_no_op(tmp_path):
    log = tmp_path / "a.log"
    seen = []

    def picky(line):
        if "bad" in line:
            raise ValueError(line)
        seen.append(line)

    with follow_log(log, picky, interval=0.01):    # the file does not exist yet
        log.write_text("good 1\nbad\ngood 2\n")
    assert seen == ["good 1", "good 2"]
    with follow_log(log, None):
        pass
