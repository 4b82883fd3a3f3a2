"""Fixtures of the PACS tests: a running Orthanc (skipped with the reason where it cannot be installed)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from orthanc_server import OrthancServer, missing_reason  # noqa: E402


@pytest.fixture
def orthanc(tmp_path_factory):
    """A fresh, empty Orthanc with DICOMweb on 127.0.0.1 (a free port); stopped after the test."""
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    server = OrthancServer(tmp_path_factory.mktemp("orthanc")).start()
    try:
        yield server
    finally:
        server.stop()
