"""PACS node settings: file round trip, validation messages, secrets only in the keyring."""

from __future__ import annotations

import json

import pytest

from medviewer.services.pacs.errors import PacsConfigError
from medviewer.services.pacs.nodes import (
    PacsConfig,
    PacsNode,
    delete_secret,
    get_secret,
    load_pacs_config,
    pacs_config_path,
    save_pacs_config,
    set_secret,
)
from medviewer.services.pacs.query import Query


def test_round_trip_and_default_location(medviewer_home):
    config = PacsConfig(ae_title="READING1", listener_port=11113)
    config.set_node(PacsNode(name="main", ae_title="PACS", host="pacs.example.org", port=11112, tls=True))
    config.set_node(PacsNode(name="web", dicomweb_url="https://pacs.example.org/dicom-web", auth="bearer"))
    save_pacs_config(config)
    assert pacs_config_path().is_file() and medviewer_home in pacs_config_path().parents
    again = load_pacs_config()
    assert again == config
    assert again.node("web").is_dicomweb and not again.node("main").is_dicomweb


def test_damaged_file_gives_defaults(tmp_path):
    path = tmp_path / "pacs.json"
    path.write_text("{not json")
    assert load_pacs_config(path) == PacsConfig()
    path.write_text(json.dumps({"ae_title": "BAD\\AE", "listener_port": 70000,
                                "nodes": [{"name": "ok", "port": "x", "host": "h", "ae_title": "A"}, {"port": 1}, 5]}))
    config = load_pacs_config(path)
    assert config.ae_title == "MEDVIEWER" and config.listener_port == 11112
    assert [n.name for n in config.nodes] == ["ok"] and config.nodes[0].port == 104


@pytest.mark.parametrize(
    "node, message",
    [
        (PacsNode(name="n", ae_title="", host="h"), "called AE title '' is invalid"),
        (PacsNode(name="n", ae_title="WAY_TOO_LONG_AE_TITLE", host="h"), "is invalid"),
        (PacsNode(name="n", ae_title="A", host=""), "no host name"),
        (PacsNode(name="n", ae_title="A", host="h", port=0), "port 0"),
        (PacsNode(name="n", dicomweb_url="ftp://x"), "must start with http"),
        (PacsNode(name="n", dicomweb_url="http://x", auth="basic"), "needs a user name"),
        (PacsNode(name="n", dicomweb_url="http://x", auth="kerberos"), "unknown authentication"),
    ],
)
def test_validation_names_the_node(node, message):
    with pytest.raises(PacsConfigError, match=r"PACS 'n'.*" + message.replace("(", r"\(")):
        node.validate()


def test_unknown_node_name():
    with pytest.raises(PacsConfigError, match="no PACS node named 'x' \\(known: a\\)"):
        PacsConfig(nodes=[PacsNode(name="a", ae_title="A", host="h")]).node("x")


def test_secrets(memory_keyring, tmp_path):
    set_secret("main", "hunter2")
    assert get_secret("main") == "hunter2"
    config = PacsConfig(nodes=[PacsNode(name="main", dicomweb_url="http://x", auth="basic", username="u")])
    save_pacs_config(config, tmp_path / "pacs.json")
    assert "hunter2" not in (tmp_path / "pacs.json").read_text()
    config.remove_node("main")
    assert get_secret("main") is None
    delete_secret("main")  # nothing stored: no error


@pytest.mark.parametrize("date", ["2024", "20240101-2024", "-", "abc"])
def test_bad_date_range(date):
    with pytest.raises(PacsConfigError, match="study date"):
        Query(study_date=date).validate()


def test_query_identifier():
    ds = Query(level="series", modality="CT", study_uid="1.2.3", patient_name="Doe*").identifier()
    assert ds.QueryRetrieveLevel == "SERIES" and ds.Modality == "CT" and ds.StudyInstanceUID == "1.2.3"
    assert ds.PatientName == "Doe*" and ds.SeriesInstanceUID == ""
