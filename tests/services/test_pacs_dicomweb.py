"""QIDO-RS, WADO-RS and STOW-RS against the Orthanc DICOMweb plugin (basic auth, keyring secret)."""

from __future__ import annotations

import time

import numpy as np
import pydicom
import pytest

from medviewer.core.errors import OperationCancelled
from medviewer.core.jobs import CancelToken
from medviewer.core.labels import LabelMap
from medviewer.io.reader import read_volume
from medviewer.services.pacs import dicomweb, operations
from medviewer.services.pacs.errors import PacsAuthenticationError, PacsConfigError, PacsUnreachableError
from medviewer.services.pacs.nodes import PacsConfig, PacsNode, set_secret
from medviewer.services.pacs.query import Query

from tests.services.orthanc_server import HTTP_PASSWORD, HTTP_USER, LOOPBACK, free_port


@pytest.fixture
def web_node(orthanc, memory_keyring):
    if not orthanc.server.has_dicomweb:
        pytest.skip("the Orthanc DICOMweb plugin is not installed: apt-get install orthanc-dicomweb")
    node = PacsNode(name="orthanc-web", dicomweb_url=orthanc.server.dicomweb_url, auth="basic", username=HTTP_USER, timeout_s=10)
    set_secret(node.name, HTTP_PASSWORD)
    return node


def test_secret_lives_in_the_keyring_only(web_node, memory_keyring, tmp_path):
    from medviewer.services.pacs.nodes import PacsConfig, load_pacs_config, save_pacs_config

    assert memory_keyring.secrets == {("medviewer-pacs", "orthanc-web"): HTTP_PASSWORD}
    path = tmp_path / "pacs.json"
    config = PacsConfig(nodes=[web_node])
    save_pacs_config(config, path)
    assert HTTP_PASSWORD not in path.read_text()
    assert load_pacs_config(path).nodes == [web_node]


def test_qido_studies_and_series(orthanc, web_node):
    rows = dicomweb.search(web_node, Query(level="study", patient_id="SYN001"))
    assert [r["StudyInstanceUID"] for r in rows] == [orthanc.studies["chest"]["study_uid"]]
    assert rows[0]["PatientName"] == "Synthetic^Test"
    assert rows[0]["NumberOfStudyRelatedInstances"] == 15
    series = dicomweb.search(web_node, Query(level="series", study_uid=orthanc.studies["chest"]["study_uid"]))
    counts = {r["SeriesInstanceUID"]: (r["Modality"], r["NumberOfSeriesRelatedInstances"]) for r in series}
    chest = orthanc.studies["chest"]["series"]
    assert counts == {chest["ct"][0]: ("CT", 12), chest["mr"][0]: ("MR", 3)}
    assert dicomweb.search(web_node, Query(study_date="20240201-20241231"))[0]["StudyInstanceUID"] == orthanc.studies["head"]["study_uid"]


def test_wado_series_is_bit_identical(orthanc, web_node, pacs_config, tmp_path):
    series_uid, originals = orthanc.studies["chest"]["series"]["ct"]
    result = operations.retrieve(web_node, pacs_config, tmp_path, series_uid=series_uid)
    assert len(result.files) == 12
    got = {str(d.SOPInstanceUID): bytes(d.PixelData) for d in map(pydicom.dcmread, result.files)}
    want = {str(d.SOPInstanceUID): bytes(d.PixelData) for d in map(pydicom.dcmread, originals)}
    assert got == want
    geometry, original = read_volume(tmp_path).geometry, read_volume(originals[0].parent).geometry
    np.testing.assert_allclose(geometry.origin, original.origin)
    np.testing.assert_allclose(geometry.spacing, original.spacing)


def test_wado_cancel_removes_partial_files(orthanc, web_node, tmp_path):
    cancel = CancelToken()

    def progress(fraction, message=""):
        if fraction >= 0.3:
            cancel.cancel()

    chest = orthanc.studies["chest"]
    with pytest.raises(OperationCancelled, match="orthanc-web"):
        dicomweb.retrieve_series(web_node, tmp_path, chest["study_uid"], chest["series"]["ct"][0], progress, cancel)
    assert list(tmp_path.iterdir()) == []


def test_stow_segmentation(orthanc, web_node, pacs_config):
    series_uid, originals = orthanc.studies["head"]["series"]["ct"]
    labels = LabelMap.empty(read_volume(originals[0].parent).geometry)
    labels.write((slice(1, 3), slice(2, 8), slice(2, 9)), 1)
    operations.send_segmentation(web_node, pacs_config, labels, originals)
    found = orthanc.server.rest("/tools/find", b'{"Level": "Series", "Query": {"Modality": "SEG"}}')
    try:
        assert len(found) == 1
        rows = dicomweb.search(web_node, Query(level="series", study_uid=orthanc.studies["head"]["study_uid"], modality="SEG"))
        assert len(rows) == 1
    finally:
        for series_id in found:
            orthanc.server.rest(f"/series/{series_id}", method="DELETE")


def test_wrong_password(orthanc, web_node):
    set_secret(web_node.name, "wrong")
    with pytest.raises(PacsAuthenticationError, match="PACS 'orthanc-web'.*HTTP 401"):
        dicomweb.search(web_node, Query())


def test_missing_secret(orthanc, memory_keyring):
    node = PacsNode(name="no-secret", dicomweb_url=orthanc.server.dicomweb_url, auth="bearer")
    with pytest.raises(PacsConfigError, match="no-secret.*no token in the system keyring"):
        dicomweb.search(node, Query())


def test_unreachable_dicomweb(memory_keyring):
    node = PacsNode(name="gone", dicomweb_url=f"http://{LOOPBACK}:{free_port()}/dicom-web", timeout_s=3)
    with pytest.raises(PacsUnreachableError, match=r"PACS .gone.*unreachable \(QIDO-RS check\): \[Errno 111\] Connection refused$"):
        start = time.monotonic()
        operations.verify(node, PacsConfig())
    assert time.monotonic() - start < 5
