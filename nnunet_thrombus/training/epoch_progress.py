"""One progress record per nnU-Net training epoch, read from the output of an ``nnUNetv2_train`` subprocess.

nnU-Net prints (and writes to its ``training_log_*.txt``) a handful of timestamped lines per epoch::

    2026-12-07 10:00:00.000000: Epoch 3
    2026-12-07 10:00:00.000000: Current learning rate: 0.00728
    2026-12-07 10:00:12.000000: train_loss -0.4121
    2026-12-07 10:00:12.000000: val_loss -0.3807
    2026-12-07 10:00:12.000000: Pseudo dice [np.float32(0.5123)]
    2026-12-07 10:00:12.000000: Epoch time: 12.03 s

:class:`EpochProgress` turns each such block into one log record (``epoch 4/7, train loss -0.412, val loss -0.381,
pseudo Dice 0.512, 12.0 s, elapsed 0.8 min, ETA 2.4 min``). :func:`follow_log` feeds it: the subprocess keeps writing
its output to our log file exactly as before, and a thread reads the new lines of that file as they arrive, so the
training itself runs unchanged (its output is only unbuffered, ``PYTHONUNBUFFERED=1``, so the lines arrive per epoch
rather than per 8 KiB).
"""
from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from pathlib import Path

logger = logging.getLogger(__name__)

#: environment for a followed subprocess: Python flushes its stdout per line, so progress arrives when it happens
UNBUFFERED = {"PYTHONUNBUFFERED": "1"}

_EPOCH = re.compile(r"(?:^|: )Epoch (\d+)\s*$")
_LOSS = re.compile(r"(?:^|: )(train_loss|val_loss) (\S+)\s*$")
_DICE = re.compile(r"(?:^|: )Pseudo dice (\[.*\])\s*$")
_EPOCH_TIME = re.compile(r"(?:^|: )Epoch time: ([0-9.eE+-]+) s\s*$")
#: numpy >= 2 prints ``np.float32(0.5)`` inside lists; keep the number
_NUMPY_SCALAR = re.compile(r"np\.\w+\(([^()]*)\)")
_NUMBER = re.compile(r"nan|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def parse_dice(text: str) -> list[float]:
    """Numbers of nnU-Net's ``Pseudo dice`` list: ``[np.float32(0.5), np.float32(nan)]`` -> ``[0.5, nan]``."""
    return [float(v) for v in _NUMBER.findall(_NUMPY_SCALAR.sub(r"\1", text))]


class EpochProgress:
    """Feed it nnU-Net training output line by line (``progress(line)``); after each ``Epoch time`` line it logs
    one INFO record: ``<label>: epoch k/N, train loss, val loss, pseudo Dice (mean over classes), epoch seconds,
    elapsed minutes since this object was made, ETA``. ``total_epochs`` None leaves out N and the ETA.
    ``clock``: seconds, for tests."""

    def __init__(self, label: str, total_epochs: int | None = None, clock=time.perf_counter):
        self.label, self.total, self.clock = label, total_epochs, clock
        self.t0 = clock()
        self.epoch: int | None = None
        self.values: dict = {}
        self.lines: list[str] = []  # the records logged, in order

    def __call__(self, line: str) -> str | None:
        """Read one output line; returns the record's text when this line finished an epoch, else None."""
        line = line.rstrip("\r\n")
        if m := _EPOCH.search(line):
            self.epoch, self.values = int(m.group(1)), {}
        elif m := _LOSS.search(line):
            self.values[m.group(1)] = _float(m.group(2))
        elif m := _DICE.search(line):
            self.values["dice"] = parse_dice(m.group(1))
        elif m := _EPOCH_TIME.search(line):
            return self._finish(_float(m.group(1)))
        return None

    def _finish(self, epoch_s: float | None) -> str:
        done = (self.epoch if self.epoch is not None else len(self.lines)) + 1  # nnU-Net counts epochs from 0
        elapsed = self.clock() - self.t0
        parts = [f"epoch {done}/{self.total}" if self.total else f"epoch {done}"]
        for key, name in (("train_loss", "train loss"), ("val_loss", "val loss")):
            if self.values.get(key) is not None:
                parts.append(f"{name} {self.values[key]:.4f}")
        dice = [d for d in self.values.get("dice", []) if d == d]
        if dice:
            parts.append(f"pseudo Dice {sum(dice) / len(dice):.3f}")
        if epoch_s is not None:
            parts.append(f"{epoch_s:.1f} s")
        parts.append(f"elapsed {elapsed / 60:.1f} min")
        if self.total and done < self.total:
            parts.append(f"ETA {elapsed / done * (self.total - done) / 60:.1f} min")
        text = f"{self.label}: " + ", ".join(parts)
        self.lines.append(text)
        self.epoch, self.values = None, {}
        logger.info(text)
        return text


class _Follower(threading.Thread):
    """Reads the lines appended to ``path`` after ``offset`` every ``interval`` seconds, until stopped; then reads
    what is left once more."""

    def __init__(self, path: Path, offset: int, on_line, interval: float):
        super().__init__(daemon=True, name=f"follow {path.name}")
        self.path, self.offset, self.on_line, self.interval = Path(path), offset, on_line, interval
        self.stop = threading.Event()
        self.partial = b""

    def _read_new(self) -> None:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except OSError:
            return
        self.offset += len(chunk)
        *complete, self.partial = (self.partial + chunk).split(b"\n")
        for raw in complete:
            self._deliver(raw)

    def _deliver(self, raw: bytes) -> None:
        try:
            self.on_line(raw.decode("utf-8", errors="replace"))
        except Exception:  # a progress line must never stop the training it reports on
            logger.debug("progress callback failed on %r", raw, exc_info=True)

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            self._read_new()
        self._read_new()
        if self.partial:
            self._deliver(self.partial)


@contextlib.contextmanager
def follow_log(path, on_line, interval: float = 1.0):
    """While the ``with`` body runs, call ``on_line(text)`` for each line appended to the file ``path`` (from its
    size at entry); the lines written before the body ends are all delivered when it exits. ``on_line`` None does
    nothing."""
    if on_line is None:
        yield
        return
    path = Path(path)
    follower = _Follower(path, path.stat().st_size if path.is_file() else 0, on_line, interval)
    follower.start()
    try:
        yield
    finally:
        follower.stop.set()
        follower.join()
