"""``medviewer pacs ...`` against the test Orthanc: the exact command-line contract of issue 16."""

from __future__ import annotations

import json
import time

import pydicom

from medviewer.cli import main

from tests.pacs_orthanc import OUR_AE
from tests.services.orthanc_server import LOOPBACK, ORTHANC_AET, free_port


def _connection(orthanc, aet=ORTHANC_AET):
    return ["--host", LOOPBACK, "--port", str(orthanc.server.dicom_port), "--called-aet", aet, "--calling-aet", OUR_AE]


def test_echo(orthanc, capsys):
    assert main(["pacs", "echo", *_connection(orthanc)]) == 0
    assert "answers C-ECHO" in capsys.readouterr().out


def test_find_json(orthanc, capsys):
    assert main(["pacs", "find", *_connection(orthanc), "--level", "series", "--study", orthanc.studies["chest"]["study_uid"],
                 "--modality", "CT", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1
    assert rows[0]["SeriesInstanceUID"] == orthanc.studies["chest"]["series"]["ct"][0]
    assert rows[0]["Modality"] == "CT" and rows[0]["SeriesDescription"] == "Chest CT"
    assert rows[0]["NumberOfSeriesRelatedInstances"] == 12


def test_find_with_date_range(orthanc, capsys):
    assert main(["pacs", "find", *_connection(orthanc), "--study-date", "20240301-20240331", "--json"]) == 0
    assert [r["PatientID"] for r in json.loads(capsys.readouterr().out)] == ["SYN002"]


def test_get_and_move(orthanc, tmp_path, capsys):
    from medviewer.services.pacs.nodes import PacsConfig, pacs_config_path, save_pacs_config

    # our listener for the C-MOVE binds to loopback only (the settings' listener address)
    save_pacs_config(PacsConfig(ae_title=OUR_AE, listener_address=LOOPBACK))
    try:
        _get_and_move(orthanc, tmp_path)
    finally:
        pacs_config_path().unlink()


def _get_and_move(orthanc, tmp_path):
    series_uid, originals = orthanc.studies["head"]["series"]["ct"]
    assert main(["pacs", "get", *_connection(orthanc), "--series", series_uid, "--out", str(tmp_path / "get")]) == 0
    assert len(list((tmp_path / "get").glob("*.dcm"))) == 5
    assert main(["pacs", "get", *_connection(orthanc), "--study", orthanc.studies["head"]["study_uid"], "--out",
                 str(tmp_path / "move"), "--move-to-port", str(orthanc.listener_port)]) == 0
    got = sorted(str(pydicom.dcmread(p).SOPInstanceUID) for p in (tmp_path / "move").glob("*.dcm"))
    assert got == sorted(str(pydicom.dcmread(p).SOPInstanceUID) for p in originals)


def test_send(orthanc, tmp_path, capsys):
    from tests.io.synthetic_dicom import AXIAL, stack_positions, write_series
    import numpy as np

    study = "1.2.826.0.1.3680043.10.1016.98"
    files = write_series(tmp_path, np.zeros((2, 4, 4), np.int16), stack_positions((0, 0, 0), AXIAL, [0, 1]),
                         series_uid=study + ".1", study_uid=study)
    try:
        assert main(["pacs", "send", *_connection(orthanc), *map(str, files)]) == 0
        assert "2 files sent" in capsys.readouterr().out
    finally:
        found = orthanc.server.rest("/tools/lookup", study.encode())
        for entry in found:
            orthanc.server.rest(f"/studies/{entry['ID']}", method="DELETE")
    assert len(found) == 1


def test_failures_are_one_line_exit_2(orthanc, capsys):
    assert main(["pacs", "echo", *_connection(orthanc, aet="WRONGAET")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "rejected the association" in err and "WRONGAET" in err
    start = time.monotonic()
    assert main(["pacs", "find", "--host", LOOPBACK, "--port", str(free_port()), "--called-aet", "X", "--timeout", "2"]) == 2
    assert time.monotonic() - start < 5
    assert "unreachable" in capsys.readouterr().err
    assert main(["pacs", "find", "--server", "nope"]) == 2
    assert "no PACS node named 'nope'" in capsys.readouterr().err
    assert main(["pacs", "get", "--host", LOOPBACK, "--study", "1.2", "--out", "x"]) == 2
    assert "--called-aet" in capsys.readouterr().err
