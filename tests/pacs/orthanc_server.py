"""A throwaway Orthanc PACS for tests: our own config in a temp folder, HTTP (DICOMweb) on a free loopback port,
its DICOM server off, remote access refused, no authentication; stopped at teardown. Never the system service."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

#: where Debian's orthanc-dicomweb puts the plugin
PLUGIN_CANDIDATES = ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so", "/usr/lib/orthanc/libOrthancDicomWeb.so")
START_TIMEOUT_S = 30.0


def missing_reason() -> str | None:
    """Why Orthanc cannot run here (None when it can)."""
    if not shutil.which("Orthanc"):
        return "Orthanc is not installed (apt-get install orthanc orthanc-dicomweb; .ci/run installs it)"
    if not any(Path(p).is_file() for p in PLUGIN_CANDIDATES):
        return "the Orthanc DICOMweb plugin is not installed (apt-get install orthanc-dicomweb)"
    try:
        import dicomweb_client  # noqa: F401
    except ImportError:
        return "dicomweb-client is not installed (pip install '.[pacs]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OrthancServer:
    """``start()`` / ``stop()`` one Orthanc under ``folder``; ``url``: its DICOMweb root."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.proc = None
        self.port = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/dicom-web"

    def _config(self) -> Path:
        plugin = next(p for p in PLUGIN_CANDIDATES if Path(p).is_file())
        db = self.folder / "db"
        db.mkdir(parents=True, exist_ok=True)
        cfg = {"Name": "nnunet_thrombus-test", "StorageDirectory": str(db), "IndexDirectory": str(db),
               "HttpPort": self.port, "HttpServerEnabled": True, "RemoteAccessAllowed": False,
               "AuthenticationEnabled": False, "DicomServerEnabled": False, "Plugins": [plugin],
               "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}, "SaveJobs": False,
               "StorageCompression": False, "HttpTimeout": 30}
        path = self.folder / "orthanc.json"
        path.write_text(json.dumps(cfg, indent=1))
        return path

    def _up(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/system", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def start(self) -> "OrthancServer":
        for _attempt in range(3):  # the free port may be taken between the probe and Orthanc's bind
            self.port = _free_port()
            log = open(self.folder / "orthanc.log", "ab")
            self.proc = subprocess.Popen(["Orthanc", str(self._config())], cwd=self.folder, stdout=log,
                                         stderr=subprocess.STDOUT)
            log.close()
            deadline = time.monotonic() + START_TIMEOUT_S
            while time.monotonic() < deadline and self.proc.poll() is None:
                if self._up():
                    return self
                time.sleep(0.2)
            self.stop()
        text = (self.folder / "orthanc.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"Orthanc did not start within {START_TIMEOUT_S:g} s; its log ends:\n{text}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self.proc = None
