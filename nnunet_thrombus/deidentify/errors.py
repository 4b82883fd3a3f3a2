"""The one error type of de-identification."""
from __future__ import annotations


class DeidentificationError(ValueError):
    """A source that cannot be de-identified by this profile (burned-in text) or a value that leaked."""
