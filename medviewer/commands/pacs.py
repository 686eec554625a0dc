"""``medviewer pacs echo|find|get|send``: DICOM networking from the command line.

Connection options: ``--host H --port P --called-aet AET`` (DIMSE), ``--dicomweb URL``,
or ``--server NAME`` for a node from the PACS settings. ``--calling-aet`` defaults to our
configured AE title. Failures print one line and exit 2 within the timeout.
"""

from __future__ import annotations

import argparse
import json

from medviewer.cli import command


def _connection(parser: argparse.ArgumentParser, dicomweb: bool = True) -> None:
    parser.add_argument("--server", metavar="NAME", help="a PACS node from the settings (replaces the options below)")
    parser.add_argument("--host", help="PACS host name or address")
    parser.add_argument("--port", type=int, help="PACS DICOM port")
    parser.add_argument("--called-aet", metavar="AET", help="the PACS's AE title")
    parser.add_argument("--calling-aet", metavar="AET", help="our AE title (default: from the settings, else MEDVIEWER)")
    parser.add_argument("--tls", action="store_true", help="DICOM over TLS")
    if dicomweb:
        parser.add_argument("--dicomweb", metavar="URL", help="a DICOMweb service instead of DIMSE")
    parser.add_argument("--timeout", type=float, default=None, help="seconds before giving up (default 30)")


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="pacs_command", metavar="ACTION", required=True)
    echo = actions.add_parser("echo", help="C-ECHO: is the PACS there and does it accept us?")
    _connection(echo, dicomweb=False)
    find = actions.add_parser("find", help="C-FIND / QIDO-RS at study or series level")
    _connection(find)
    find.add_argument("--level", choices=["study", "series"], default="study")
    find.add_argument("--patient-id", default="")
    find.add_argument("--patient-name", default="", metavar="PATTERN", help="wildcards * and ?")
    find.add_argument("--study-date", default="", metavar="YYYYMMDD[-YYYYMMDD]")
    find.add_argument("--modality", default="")
    find.add_argument("--accession", default="")
    find.add_argument("--study", default="", metavar="UID", help="Study Instance UID (series level: its series)")
    find.add_argument("--json", action="store_true", help="print a JSON list of objects keyed by DICOM keyword")
    get = actions.add_parser("get", help="retrieve a study or series (C-GET, C-MOVE with --move-to-port, or WADO-RS)")
    _connection(get)
    which = get.add_mutually_exclusive_group(required=True)
    which.add_argument("--study", metavar="UID")
    which.add_argument("--series", metavar="UID")
    get.add_argument("--out", required=True, metavar="DIR", help="folder for the received files")
    get.add_argument("--move-to-port", type=int, metavar="PORT", help="C-MOVE to our own listener on this port")
    send = actions.add_parser("send", help="C-STORE / STOW-RS DICOM files")
    _connection(send)
    send.add_argument("files", nargs="+", metavar="FILE")


def _node_and_config(args: argparse.Namespace):
    from medviewer.services.pacs.errors import PacsConfigError
    from medviewer.services.pacs.nodes import PacsNode, check_ae_title, load_pacs_config

    config = load_pacs_config()
    if getattr(args, "calling_aet", None):
        config.ae_title = check_ae_title(args.calling_aet, "--calling-aet")
    dicomweb = getattr(args, "dicomweb", None)
    if args.server:
        node = config.node(args.server)
    elif dicomweb:
        node = PacsNode(name="", dicomweb_url=dicomweb)
    elif args.host and args.port and args.called_aet:
        node = PacsNode(name="", ae_title=args.called_aet, host=args.host, port=args.port, tls=args.tls)
    else:
        raise PacsConfigError("give --server NAME, or --host, --port and --called-aet" + (", or --dicomweb URL" if hasattr(args, "dicomweb") else ""))
    if args.timeout is not None:
        node.timeout_s = args.timeout
    return node.validate(), config


def _progress(description: str):
    from medviewer.commands.info import cli_progress

    return cli_progress(description)


def _text_row(row: dict) -> str:
    return "  ".join(str(v if not isinstance(v, list) else "\\".join(map(str, v))) for v in row.values() if v not in ("", None, []))


@command("pacs", "query, retrieve and send over DICOM networking (C-ECHO/FIND/GET/MOVE/STORE, DICOMweb)", _add_arguments)
def run(args: argparse.Namespace) -> int:
    from medviewer.services.pacs import operations
    from medviewer.services.pacs.query import Query

    node, config = _node_and_config(args)
    if args.pacs_command == "echo":
        operations.verify(node, config)
        print(f"{node.describe()} answers C-ECHO")
        return 0
    if args.pacs_command == "find":
        query = Query(level=args.level, patient_id=args.patient_id, patient_name=args.patient_name,
                      study_date=args.study_date, modality=args.modality, accession_number=args.accession, study_uid=args.study)
        rows = operations.query(node, config, query)
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            for row in rows:
                print(_text_row(row))
        return 0
    if args.pacs_command == "get":
        if args.move_to_port:
            node.use_move = True
            config.listener_port = args.move_to_port
        progress, close = _progress("Retrieving")
        try:
            result = operations.retrieve(node, config, args.out, args.study or "", args.series or "", progress)
        finally:
            close()
        print(f"{len(result.files)} instances received into {result.folder}")
        return 0
    progress, close = _progress("Sending")
    try:
        result = operations.send(node, config, args.files, progress)
    finally:
        close()
    print(f"{len(result.sent)} files sent to {node.describe()}")
    return 0
