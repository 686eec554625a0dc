"""Run a private Orthanc server on free loopback ports for the PACS tests.

Each server gets its own temporary configuration and storage; nothing listens for
anything but tests on this machine (``RemoteAccessAllowed`` false, clients connect to
127.0.0.1 only), and ``stop()`` ends the process it started.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"
ORTHANC_AET = "ORTHANCTEST"
HTTP_USER, HTTP_PASSWORD = "medviewer", "s3cret-for-tests"
DICOMWEB_PLUGIN_DIRS = (Path("/usr/share/orthanc/plugins"), Path("/usr/lib/orthanc/plugins"))


def orthanc_binary() -> str | None:
    return shutil.which("Orthanc") or shutil.which("orthanc")


def dicomweb_plugin() -> Path | None:
    for folder in DICOMWEB_PLUGIN_DIRS:
        candidate = folder / "libOrthancDicomWeb.so"
        if candidate.exists():
            return candidate
    return None


def free_port() -> int:
    """A TCP port nothing listens on right now (bound on loopback, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


@dataclass
class OrthancServer:
    folder: Path
    modalities: dict[str, tuple[str, int]] = field(default_factory=dict)  # name -> (AE title, port)
    dicom_port: int = 0
    http_port: int = 0
    process: subprocess.Popen | None = None
    has_dicomweb: bool = False
    #: more configuration options (e.g. DICOM TLS), merged over the defaults
    extra_config: dict = field(default_factory=dict)

    @property
    def http_url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.http_url}/dicom-web"

    def start(self, timeout_s: float = 30.0) -> "OrthancServer":
        binary = orthanc_binary()
        if binary is None:
            raise RuntimeError("Orthanc is not installed")
        self.dicom_port, self.http_port = free_port(), free_port()
        plugin = dicomweb_plugin()
        self.has_dicomweb = plugin is not None
        storage = self.folder / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "medviewer-test",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "DicomAet": ORTHANC_AET,
            "DicomPort": self.dicom_port,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,  # DICOMweb clients must send basic-auth credentials
            "RegisteredUsers": {HTTP_USER: HTTP_PASSWORD},
            "DicomCheckCalledAet": True,  # a wrong called AE title is rejected, as on a real PACS
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowGet": True,
            "DicomAlwaysAllowMove": True,
            "DicomModalities": {name: [aet, LOOPBACK, port] for name, (aet, port) in self.modalities.items()},
            "DicomScuTimeout": 10,
            "DicomScpTimeout": 10,
            "Plugins": [str(plugin)] if plugin else [],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False, "Ssl": False, "StudiesMetadata": "Full", "SeriesMetadata": "Full"},
            "StableAge": 1,
            "SaveJobs": False,
            "HttpDescribeErrors": True,
        }
        config.update(self.extra_config)
        config_path = self.folder / "orthanc.json"
        config_path.write_text(json.dumps(config, indent=2))
        log = open(self.folder / "orthanc.log", "wb")
        self.process = subprocess.Popen([binary, str(config_path)], stdout=log, stderr=subprocess.STDOUT, cwd=self.folder)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited at start: {(self.folder / 'orthanc.log').read_text(errors='replace')[-2000:]}")
            try:
                self.rest("/system")
                return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("Orthanc did not start within %.0f s" % timeout_s)

    def rest(self, path: str, data: bytes | None = None, method: str | None = None):
        request = urllib.request.Request(self.http_url + path, data=data, method=method)
        token = base64.b64encode(f"{HTTP_USER}:{HTTP_PASSWORD}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        if data is not None:
            request.add_header("Content-Type", "application/dicom")
        with urllib.request.urlopen(request, timeout=30) as answer:
            body = answer.read()
        return json.loads(body) if body else None

    def upload(self, paths) -> list[str]:
        """Store files over the REST API; the Orthanc instance ids."""
        return [self.rest("/instances", Path(p).read_bytes())["ID"] for p in paths]

    def instances_of_series(self, series_uid: str) -> list[dict]:
        found = self.rest("/tools/find", json.dumps({"Level": "Instance", "Query": {"SeriesInstanceUID": series_uid}, "Expand": True}).encode())
        return found

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None
