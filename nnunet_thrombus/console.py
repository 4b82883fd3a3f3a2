"""What a command shows on the terminal: log records on stderr, a command's result on stdout.

Library modules only create ``logger = logging.getLogger(__name__)`` and log; the entry points (the
``nnunet_thrombus`` command, a Ray worker, a benchmark script run as ``__main__``) call :func:`configure_logging`
once. Records go to stderr as ``HH:MM:SS message``; warnings and errors carry their level
(``HH:MM:SS WARNING: message``), debug records their logger's name. What a command was asked to print (a table,
shell lines to ``eval``) goes to stdout through :func:`print_result`, so it can be piped apart from the log.
"""
from __future__ import annotations

import logging
import sys

#: loggers of this project; other libraries' records pass at WARNING and above only (their INFO/DEBUG is noise here)
PROJECT_LOGGERS = ("nnunet_thrombus", "dataset_conversion", "__main__")
#: the level of other libraries' loggers when ours are at INFO or DEBUG
OTHER_LIBRARIES_LEVEL = logging.WARNING


class ConsoleFormatter(logging.Formatter):
    """``HH:MM:SS message``; ``LEVEL:`` before the message from WARNING up; the logger name at DEBUG."""

    def __init__(self):
        super().__init__(datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            text = f"{text}\n{record.exc_text}"
        stamp = self.formatTime(record, self.datefmt)
        if record.levelno >= logging.WARNING:
            return f"{stamp} {record.levelname}: {text}"
        if record.levelno < logging.INFO:
            return f"{stamp} DEBUG [{record.name}] {text}"
        return f"{stamp} {text}"


class StderrHandler(logging.StreamHandler):
    """A stream handler bound to whatever ``sys.stderr`` is when a record is written (not when it was made), so
    redirections made later (pytest's capture, a Ray worker's log file) receive the records."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):  # StreamHandler.__init__ / setStream assign it; the property always follows sys.stderr
        pass


def level_from_flags(verbose: bool = False, quiet: bool = False) -> int:
    """``-q`` -> ERROR (wins over ``-v``), ``-v`` -> DEBUG, neither -> INFO."""
    if quiet:
        return logging.ERROR
    return logging.DEBUG if verbose else logging.INFO


def configure_logging(level: int = logging.INFO) -> None:
    """Send records of :data:`PROJECT_LOGGERS` at ``level`` and above, and other libraries' records at WARNING
    (or ``level`` if higher) and above, to stderr through one :class:`StderrHandler` on the root logger. Calling it
    again replaces the handler and levels (each ``nnunet_thrombus`` call in one process gets its own flags)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, StderrHandler)]:
        root.removeHandler(handler)
    handler = StderrHandler()
    handler.setFormatter(ConsoleFormatter())
    root.addHandler(handler)
    root.setLevel(max(level, OTHER_LIBRARIES_LEVEL))
    for name in PROJECT_LOGGERS:
        logging.getLogger(name).setLevel(level)


def print_result(text: str) -> None:
    """A command's result (a table it was asked for) on stdout, unless the command runs with ``-q`` (its result is
    also in the files it wrote)."""
    if logging.getLogger("nnunet_thrombus").isEnabledFor(logging.INFO):
        print(text, flush=True)  # deliberate stdout: the command's result, kept apart from the log on stderr
