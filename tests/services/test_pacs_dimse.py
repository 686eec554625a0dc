"""C-ECHO, C-FIND, C-GET, C-MOVE and C-STORE against a real Orthanc (see conftest.py)."""

from __future__ import annotations

import socket
import threading

import numpy as np
import pydicom
import pytest

from medviewer.core.errors import OperationCancelled
from medviewer.core.jobs import CancelToken
from medviewer.core.labels import LabelMap
from medviewer.io.reader import read_volume
from medviewer.services.pacs import dimse, operations
from medviewer.services.pacs.errors import AssociationRejectedError, PacsError, PacsTimeoutError, PacsUnreachableError
from medviewer.services.pacs.nodes import PacsNode
from medviewer.services.pacs.query import Query

from tests.services.orthanc_server import LOOPBACK, free_port

from tests.pacs_orthanc import OUR_AE


def _pixels_by_sop(paths) -> dict[str, bytes]:
    found = {}
    for path in paths:
        ds = pydicom.dcmread(path)
        found[str(ds.SOPInstanceUID)] = bytes(ds.PixelData)
    return found


def test_echo(dimse_node):
    dimse.echo(dimse_node, OUR_AE)  # raises unless Orthanc answers Success


def test_find_studies_exact(orthanc, dimse_node):
    rows = dimse.find(dimse_node, OUR_AE, Query(level="study"))
    by_uid = {r["StudyInstanceUID"]: r for r in rows}
    chest = orthanc.studies["chest"]["study_uid"]
    assert set(by_uid) == {chest, orthanc.studies["head"]["study_uid"]}
    assert by_uid[chest]["PatientName"] == "Synthetic^Test"
    assert by_uid[chest]["PatientID"] == "SYN001"
    assert by_uid[chest]["StudyDate"] == "20240101"
    assert by_uid[chest]["AccessionNumber"] == "ACC0001"
    assert by_uid[chest]["NumberOfStudyRelatedSeries"] == 2
    assert by_uid[chest]["NumberOfStudyRelatedInstances"] == 15
    assert sorted(by_uid[chest]["ModalitiesInStudy"]) == ["CT", "MR"]


@pytest.mark.parametrize(
    "query, expected",
    [
        (Query(patient_name="Synth*"), {"chest"}),
        (Query(patient_id="SYN002"), {"head"}),
        (Query(study_date="20240201-20241231"), {"head"}),
        (Query(study_date="-20240102"), {"chest"}),
        (Query(modality="MR"), {"chest"}),
        (Query(accession_number="ACC0002"), {"head"}),
        (Query(patient_name="Nobody*"), set()),
    ],
)
def test_find_study_filters(orthanc, dimse_node, query, expected):
    rows = dimse.find(dimse_node, OUR_AE, query)
    uids = {r["StudyInstanceUID"] for r in rows}
    assert uids == {orthanc.studies[k]["study_uid"] for k in expected}


def test_find_series_level(orthanc, dimse_node):
    chest = orthanc.studies["chest"]
    rows = dimse.find(dimse_node, OUR_AE, Query(level="series", study_uid=chest["study_uid"]))
    by_uid = {r["SeriesInstanceUID"]: r for r in rows}
    ct_uid, mr_uid = chest["series"]["ct"][0], chest["series"]["mr"][0]
    assert set(by_uid) == {ct_uid, mr_uid}
    assert by_uid[ct_uid]["Modality"] == "CT"
    assert by_uid[ct_uid]["SeriesDescription"] == "Chest CT"
    assert by_uid[ct_uid]["NumberOfSeriesRelatedInstances"] == 12
    assert by_uid[mr_uid]["NumberOfSeriesRelatedInstances"] == 3
    only_mr = dimse.find(dimse_node, OUR_AE, Query(level="series", study_uid=chest["study_uid"], modality="MR"))
    assert [r["SeriesInstanceUID"] for r in only_mr] == [mr_uid]


def test_c_get_series_is_bit_identical(orthanc, dimse_node, tmp_path):
    series_uid, originals = orthanc.studies["chest"]["series"]["ct"]
    steps = []
    result = dimse.get(dimse_node, OUR_AE, tmp_path, series_uid=series_uid, progress=lambda f, m="": steps.append(f))
    assert len(result.files) == 12
    assert _pixels_by_sop(result.files) == _pixels_by_sop(originals)
    assert steps[-1] == 1.0 and len(steps) > 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in result.files)  # no temporary files left
    # the geometry of what came back is the geometry of what went in
    got, want = read_volume(tmp_path).geometry, read_volume(originals[0].parent).geometry
    np.testing.assert_allclose(got.spacing, want.spacing)
    np.testing.assert_allclose(got.origin, want.origin)
    np.testing.assert_allclose(got.direction, want.direction)


def test_c_get_whole_study(orthanc, dimse_node, tmp_path):
    result = dimse.get(dimse_node, OUR_AE, tmp_path, study_uid=orthanc.studies["chest"]["study_uid"])
    assert len(result.files) == 15


def test_c_move_to_our_listener(orthanc, dimse_node, pacs_config, tmp_path):
    series_uid, originals = orthanc.studies["head"]["series"]["ct"]
    result = dimse.move(dimse_node, OUR_AE, tmp_path, orthanc.listener_port, series_uid=series_uid, listener_address=LOOPBACK)
    assert len(result.files) == 5
    assert _pixels_by_sop(result.files) == _pixels_by_sop(originals)
    # through the protocol-neutral entry point, with the node set to C-MOVE
    dimse_node.use_move = True
    again = operations.retrieve(dimse_node, pacs_config, tmp_path / "again", study_uid=orthanc.studies["head"]["study_uid"])
    assert len(again.files) == 5


def test_c_move_to_unknown_destination_names_the_problem(orthanc, dimse_node, tmp_path):
    with pytest.raises(PacsError, match="may not know our AE title 'STRANGER'.*port"):
        dimse.move(dimse_node, "STRANGER", tmp_path, free_port(), series_uid=orthanc.studies["head"]["series"]["ct"][0],
                   listener_address=LOOPBACK)
    assert not list(tmp_path.iterdir())


def test_cancelled_get_leaves_nothing(orthanc, dimse_node, tmp_path):
    cancel = CancelToken()
    seen = []

    def progress(fraction, message=""):
        seen.append(fraction)
        if fraction >= 0.25:
            cancel.cancel()

    with pytest.raises(OperationCancelled, match="test-orthanc"):
        dimse.get(dimse_node, OUR_AE, tmp_path, series_uid=orthanc.studies["chest"]["series"]["ct"][0],
                  progress=progress, cancel=cancel)
    assert any(0.25 <= f < 1.0 for f in seen)  # it really stopped half-way
    assert list(tmp_path.iterdir()) == []
    dimse.echo(dimse_node, OUR_AE)  # the server is fine afterwards


def test_c_store_segmentation_round_trip(orthanc, dimse_node, pacs_config):
    """The clinical loop: our DICOM SEG of the CT goes to the PACS and is found there."""
    series_uid, originals = orthanc.studies["chest"]["series"]["ct"]
    volume = read_volume(originals[0].parent)
    labels = LabelMap.empty(volume.geometry, name="Lesion")
    labels.write((slice(3, 6), slice(4, 10), slice(5, 12)), 1)
    result = operations.send_segmentation(dimse_node, pacs_config, labels, originals)
    assert len(result.sent) == 1
    found = orthanc.server.rest("/tools/find", b'{"Level": "Series", "Query": {"Modality": "SEG"}, "Expand": true}')
    try:
        assert len(found) == 1
        assert found[0]["ParentStudy"] == orthanc.server.rest("/tools/lookup", orthanc.studies["chest"]["study_uid"].encode())[0]["ID"]
        sent = pydicom.dcmread(result.sent[0]) if result.sent[0].exists() else None
        assert sent is None  # the temporary export is gone
        rows = dimse.find(dimse_node, OUR_AE, Query(level="series", study_uid=orthanc.studies["chest"]["study_uid"], modality="SEG"))
        assert len(rows) == 1 and rows[0]["NumberOfSeriesRelatedInstances"] == 1
    finally:
        for series in found:
            orthanc.server.rest(f"/series/{series['ID']}", method="DELETE")


def test_c_store_plain_files(orthanc, dimse_node, tmp_path):
    from tests.io.synthetic_dicom import AXIAL, stack_positions, write_series

    files = write_series(tmp_path, np.arange(2 * 4 * 4, dtype=np.int16).reshape(2, 4, 4),
                         stack_positions((0, 0, 0), AXIAL, [0, 1]), series_uid="1.2.826.0.1.3680043.10.1016.99.1",
                         study_uid="1.2.826.0.1.3680043.10.1016.99")
    result = dimse.store(dimse_node, OUR_AE, files)
    assert sorted(result.sent) == sorted(files)
    try:
        assert len(orthanc.server.instances_of_series("1.2.826.0.1.3680043.10.1016.99.1")) == 2
    finally:
        study = orthanc.server.rest("/tools/lookup", b"1.2.826.0.1.3680043.10.1016.99")[0]["ID"]
        orthanc.server.rest(f"/studies/{study}", method="DELETE")


def test_store_refuses_a_non_dicom_file(dimse_node, tmp_path):
    bad = tmp_path / "notes.dcm"
    bad.write_text("not dicom")
    with pytest.raises(PacsError, match="notes.dcm: cannot send"):
        dimse.store(dimse_node, OUR_AE, [bad])


def test_wrong_called_ae_title_is_rejected(orthanc):
    node = PacsNode(name="typo", ae_title="NOTORTHANC", host=LOOPBACK, port=orthanc.server.dicom_port, timeout_s=5)
    with pytest.raises(AssociationRejectedError, match=r"PACS 'typo' \(NOTORTHANC@127.0.0.1:\d+\) rejected .*called AE title"):
        dimse.echo(node, OUR_AE)


def test_unreachable_node():
    node = PacsNode(name="down", ae_title="ANY", host=LOOPBACK, port=free_port(), timeout_s=3)
    with pytest.raises(PacsUnreachableError, match="PACS 'down'.*unreachable"):
        dimse.echo(node, OUR_AE)


def test_silent_server_times_out():
    """A port that accepts TCP but never speaks DICOM: a timeout naming the node, within the limit."""
    import time

    server = socket.socket()
    server.bind((LOOPBACK, 0))
    server.listen(1)
    accepted = []
    thread = threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True)
    thread.start()
    node = PacsNode(name="mute", ae_title="ANY", host=LOOPBACK, port=server.getsockname()[1], timeout_s=1)
    start = time.monotonic()
    try:
        with pytest.raises(PacsTimeoutError, match="PACS 'mute'.*1 s"):
            dimse.echo(node, OUR_AE)
        assert time.monotonic() - start < 5
    finally:
        for connection, _ in accepted:
            connection.close()
        server.close()


def test_stopped_server(tmp_path):
    from tests.services.orthanc_server import OrthancServer, orthanc_binary

    if orthanc_binary() is None:
        pytest.skip("Orthanc is not installed: apt-get install orthanc orthanc-dicomweb")
    server = OrthancServer(tmp_path).start()
    node = PacsNode(name="short-lived", ae_title="ORTHANCTEST", host=LOOPBACK, port=server.dicom_port, timeout_s=3)
    dimse.echo(node, OUR_AE)
    server.stop()
    with pytest.raises(PacsUnreachableError, match="short-lived"):
        dimse.find(node, OUR_AE, Query())


def test_full_disk_during_retrieve_keeps_nothing(orthanc, dimse_node, tmp_path, monkeypatch):
    """A write failure (here: ENOSPC on the third file) fails the retrieve with the path and the reason."""
    import errno
    import os

    real_replace = os.replace
    calls = []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(dimse.os, "replace", replace)
    with pytest.raises(PacsError, match=r"test-orthanc.*cannot write the received files: .*\.dcm: No space left on device"):
        dimse.get(dimse_node, OUR_AE, tmp_path, series_uid=orthanc.studies["chest"]["series"]["ct"][0])
    assert list(tmp_path.iterdir()) == []


def test_listener_port_taken_by_another_program(orthanc, dimse_node, tmp_path):
    blocker = socket.socket()
    blocker.bind((LOOPBACK, 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    try:
        with pytest.raises(PacsError, match=f"cannot start our DICOM listener \\({OUR_AE}\\) on port {port}"):
            dimse.move(dimse_node, OUR_AE, tmp_path, port, series_uid=orthanc.studies["head"]["series"]["ct"][0],
                       listener_address=LOOPBACK)
    finally:
        blocker.close()


def _self_signed_certificate(folder):
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = folder / "server.crt", folder / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def test_dicom_over_tls(tmp_path):
    from tests.services.orthanc_server import OrthancServer, orthanc_binary

    if orthanc_binary() is None:
        pytest.skip("Orthanc is not installed: apt-get install orthanc orthanc-dicomweb")
    cert, key = _self_signed_certificate(tmp_path)
    server = OrthancServer(tmp_path / "tls", extra_config={
        "DicomTlsEnabled": True, "DicomTlsCertificate": str(cert), "DicomTlsPrivateKey": str(key),
        "DicomTlsTrustedCertificates": str(cert), "DicomTlsRemoteCertificateRequired": False,
    }).start()
    try:
        node = PacsNode(name="secure", ae_title="ORTHANCTEST", host=LOOPBACK, port=server.dicom_port, tls=True,
                        tls_ca_file=str(cert), timeout_s=5)
        dimse.echo(node, OUR_AE)
        untrusted = PacsNode(name="untrusted", ae_title="ORTHANCTEST", host=LOOPBACK, port=server.dicom_port, tls=True, timeout_s=5)
        with pytest.raises(PacsError, match="PACS 'untrusted'.*TLS connection failed: the server's certificate is not trusted"):
            dimse.echo(untrusted, OUR_AE)
        plain = PacsNode(name="plain", ae_title="ORTHANCTEST", host=LOOPBACK, port=server.dicom_port, timeout_s=3)
        with pytest.raises(PacsTimeoutError, match="PACS 'plain'.*does the server expect TLS"):
            dimse.echo(plain, OUR_AE)
    finally:
        server.stop()


def test_study_retrieve_comes_series_by_series(orthanc, dimse_node, pacs_config, tmp_path):
    chest = orthanc.studies["chest"]
    arrived, messages = [], []
    result = operations.retrieve(dimse_node, pacs_config, tmp_path, study_uid=chest["study_uid"],
                                 progress=lambda f, m="": messages.append(m),
                                 on_series=lambda uid, files: arrived.append((uid, len(files))))
    assert arrived == [(chest["series"]["ct"][0], 12), (chest["series"]["mr"][0], 3)]  # series number order
    assert len(result.files) == 15
    assert any(m.startswith("series 1 of 2 (CT Chest CT)") for m in messages)
    assert any(m.startswith("series 2 of 2 (MR Localizer MR)") for m in messages)


def test_retrieved_study_is_indexed_in_the_local_study_database(orthanc, dimse_node, pacs_config, tmp_path):
    from medviewer.services import study_db

    chest = orthanc.studies["chest"]
    database = tmp_path / "db"
    result = operations.retrieve(dimse_node, pacs_config, tmp_path / "in", study_uid=chest["study_uid"],
                                 database=database)
    assert result.database_error == "" and result.database_report.imported == 15
    (study,) = study_db.list_studies(database=database)
    assert study.study_uid == chest["study_uid"] and study.instance_count == 15 and study.stored_count == 0
    assert sorted(s.instance_count for s in study.series) == [3, 12]  # indexed where they were retrieved
    again = operations.retrieve(dimse_node, pacs_config, tmp_path / "again", study_uid=chest["study_uid"],
                                database=database, index_in_database=False)
    assert again.database_report is None and len(again.files) == 15


def test_a_failed_retrieve_again_keeps_the_files_an_earlier_one_brought(orthanc, dimse_node, pacs_config, tmp_path):
    """Retrieving a study that is already there (and indexed) then cancelling must not delete it."""
    chest = orthanc.studies["chest"]
    first = operations.retrieve(dimse_node, pacs_config, tmp_path, study_uid=chest["study_uid"],
                                index_in_database=False)
    before = {p: p.read_bytes() for p in first.files}
    assert len(before) == 15 and len(first.created) == 15
    cancel = CancelToken()
    with pytest.raises(OperationCancelled):
        operations.retrieve(dimse_node, pacs_config, tmp_path, study_uid=chest["study_uid"], cancel=cancel,
                            on_series=lambda uid, files: cancel.cancel(), index_in_database=False)
    assert {p: p.read_bytes() for p in sorted(tmp_path.glob("*.dcm"))} == before


def test_cancel_in_second_series_removes_the_first(orthanc, dimse_node, pacs_config, tmp_path):
    cancel = CancelToken()
    with pytest.raises(OperationCancelled):
        operations.retrieve(dimse_node, pacs_config, tmp_path, study_uid=orthanc.studies["chest"]["study_uid"],
                            cancel=cancel, on_series=lambda uid, files: cancel.cancel())
    assert [p for p in tmp_path.iterdir()] == []
