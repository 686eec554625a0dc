"""Fixtures for the PACS tests: a private Orthanc server seeded with synthetic studies.

Loaded for every test folder by ``tests/conftest.py`` (``pytest_plugins``), so service and GUI
tests share one server. It runs on free loopback ports with a temporary configuration and
storage (``tests/services/orthanc_server.py``), once per test session, and is stopped afterwards. Without the
``Orthanc`` binary the tests that need it skip with a message saying how to install it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.io.synthetic_dicom import AXIAL, stack_positions, write_series
from tests.services.orthanc_server import LOOPBACK, ORTHANC_AET, OrthancServer, free_port, orthanc_binary

OUR_AE = "MEDVIEWERTEST"
INSTALL_HINT = "Orthanc is not installed: apt-get install orthanc orthanc-dicomweb (make test installs it)"


@dataclass
class SeededPacs:
    server: OrthancServer
    listener_port: int
    #: study key -> {"study_uid", "series": {series key -> (series_uid, [files])}}
    studies: dict
    files: list[Path]


def _seed(folder: Path) -> tuple[dict, list[Path]]:
    rng = np.random.default_rng(16)
    studies: dict = {}
    everything: list[Path] = []
    specs = {
        "chest": dict(patient=("Synthetic^Test", "SYN001"), date="20240101", accession="ACC0001",
                      series={"ct": ("CT", 12, "Chest CT"), "mr": ("MR", 3, "Localizer MR")}),
        "head": dict(patient=("Other^Person", "SYN002"), date="20240315", accession="ACC0002",
                     series={"ct": ("CT", 5, "Head CT")}),
    }
    for key, spec in specs.items():
        study_uid = f"1.2.826.0.1.3680043.10.1016.{16 if key == 'chest' else 17}"
        entry = {"study_uid": study_uid, "series": {}}
        for number, (series_key, (modality, count, description)) in enumerate(spec["series"].items(), start=1):
            pixels = rng.integers(-1000, 2000, size=(count, 20, 24)).astype(np.int16)
            positions = stack_positions((-12.0, -8.0, 40.0), AXIAL, np.arange(count) * 2.5)
            series_uid = f"{study_uid}.{number}"
            files = write_series(
                folder / key / series_key, pixels, positions, modality=modality, series_uid=series_uid,
                study_uid=study_uid, series_number=number, description=description,
                extra={"PatientName": spec["patient"][0], "PatientID": spec["patient"][1], "StudyDate": spec["date"],
                       "AccessionNumber": spec["accession"], "StudyTime": "101500",
                       # what a scanner writes and highdicom's SEG export copies
                       "PatientBirthDate": "19700101", "PatientSex": "O", "StudyID": "1", "ReferringPhysicianName": "",
                       "Manufacturer": "synthetic"},
            )
            entry["series"][series_key] = (series_uid, sorted(files))
            everything += files
        studies[key] = entry
    return studies, everything


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory) -> SeededPacs:
    """A running Orthanc with two synthetic studies (3 series, 20 instances); our AE is registered."""
    if orthanc_binary() is None:
        pytest.skip(INSTALL_HINT)
    folder = tmp_path_factory.mktemp("orthanc")
    listener_port = free_port()
    server = OrthancServer(folder / "server", {"medviewer": (OUR_AE, listener_port)})
    server.start()
    try:
        studies, files = _seed(folder / "seed")
        server.upload(files)
        yield SeededPacs(server, listener_port, studies, files)
    finally:
        from medviewer.services.pacs.dimse import stop_listeners

        stop_listeners()
        server.stop()


@pytest.fixture
def dimse_node(orthanc):
    from medviewer.services.pacs.nodes import PacsNode

    return PacsNode(name="test-orthanc", ae_title=ORTHANC_AET, host=LOOPBACK, port=orthanc.server.dicom_port, timeout_s=10)


@pytest.fixture
def pacs_config(orthanc):
    from medviewer.services.pacs.nodes import PacsConfig

    return PacsConfig(ae_title=OUR_AE, listener_port=orthanc.listener_port, listener_address=LOOPBACK)


@pytest.fixture
def memory_keyring():
    """Secrets in memory for the test (never the real user's keyring)."""
    import keyring
    from keyring.backend import KeyringBackend

    class MemoryKeyring(KeyringBackend):
        priority = 1

        def __init__(self) -> None:
            super().__init__()
            self.secrets: dict[tuple[str, str], str] = {}

        def get_password(self, service, username):
            return self.secrets.get((service, username))

        def set_password(self, service, username, password):
            self.secrets[(service, username)] = password

        def delete_password(self, service, username):
            from keyring.errors import PasswordDeleteError

            if self.secrets.pop((service, username), None) is None:
                raise PasswordDeleteError("not set")

    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)
