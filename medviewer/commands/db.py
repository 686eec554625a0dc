"""``medviewer db list [--json]``, ``medviewer db import DIR [--copy|--in-place]``, ``medviewer db remove UID``.

The local study database from the command line (``medviewer.services.study_db``).
Errors a user can cause (a missing folder, no DICOM files, an unknown UID, a damaged
database) print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from medviewer.cli import command

#: the sort keys of medviewer.io.study_store.SORT_KEYS (listed here so `medviewer --help` imports nothing heavy)
SORT_CHOICES = ("study_date", "patient_name", "patient_id", "description", "modality", "accession",
                "series_count", "instance_count", "added")


def _database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database", metavar="DIR", help="database folder (default: the user's, in the medviewer data folder)")


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="db_command", metavar="ACTION")
    listing = actions.add_parser("list", help="list the studies in the database", description="list the studies in the database")
    listing.add_argument("--json", action="store_true", help="print a JSON list with one object per study (DICOM keywords)")
    listing.add_argument("--patient-name", default="", metavar="PATTERN", help="substring, or a pattern with * and ?")
    listing.add_argument("--patient-id", default="", metavar="ID", help="substring, or a pattern with * and ?")
    listing.add_argument("--study-date", default="", metavar="YYYYMMDD[-YYYYMMDD]", help="a date or a date range")
    listing.add_argument("--modality", default="", metavar="M", help="studies with a series of this modality (CT, MR...)")
    listing.add_argument("--description", default="", metavar="TEXT", help="in the study or a series description")
    listing.add_argument("--sort", default="study_date", choices=sorted(SORT_CHOICES), help="sort key (default: study_date)")
    listing.add_argument("--ascending", action="store_true", help="sort in ascending order (default: descending)")
    _database_option(listing)

    importing = actions.add_parser("import", help="import the DICOM files of a folder", description="import the DICOM files of a folder")
    importing.add_argument("folder", metavar="DIR", help="folder (searched recursively) or DICOM file")
    mode = importing.add_mutually_exclusive_group()
    mode.add_argument("--copy", dest="copy", action="store_true", default=True,
                      help="copy the files into the database's own storage (default)")
    mode.add_argument("--in-place", dest="copy", action="store_false", help="index the files where they are (not copied)")
    importing.add_argument("--json", action="store_true", help="print the import report as JSON")
    importing.add_argument("--no-thumbnails", action="store_true", help="do not make the series thumbnails now")
    _database_option(importing)

    removing = actions.add_parser("remove", help="remove a study or series (by UID) from the database",
                                  description="remove a study or series: files in the database's storage are deleted, "
                                              "files indexed in place are left where they are")
    removing.add_argument("uid", metavar="UID", help="StudyInstanceUID or SeriesInstanceUID")
    _database_option(removing)
    parser.set_defaults(db_parser=parser)


def _date_range(text: str) -> tuple[str, str]:
    from medviewer.core.errors import MedviewerError

    text = text.strip()
    if not text:
        return "", ""
    first, _, last = text.partition("-")
    for value in (first, last):
        if value and not (len(value) == 8 and value.isdigit()):
            raise MedviewerError(f"--study-date must be YYYYMMDD or YYYYMMDD-YYYYMMDD, not '{text}'")
    return first, (last if "-" in text else first)


def _table(studies) -> str:
    rows = [("Patient", "ID", "Date", "Modalities", "Description", "Series", "Images", "Storage", "Study UID")]
    for study in studies:
        date = study.study_date
        shown = f"{date[:4]}-{date[4:6]}-{date[6:]}" if len(date) == 8 else date
        rows.append((study.patient_name, study.patient_id, shown, "/".join(study.modalities), study.description,
                     str(study.series_count), str(study.instance_count), study.storage, study.study_uid))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip() for row in rows)


def _list(args: argparse.Namespace) -> int:
    from medviewer.services import study_db

    first, last = _date_range(args.study_date)
    query = study_db.StudyQuery(patient_name=args.patient_name, patient_id=args.patient_id, date_from=first,
                                date_to=last, modality=args.modality, description=args.description, sort=args.sort,
                                descending=not args.ascending)
    studies = study_db.list_studies(query, database=args.database)
    if args.json:
        records = []
        for study in studies:
            record = study.to_dict()
            for series, shown in zip(study.series, record["series"]):
                picture = study_db.thumbnail_path(series, args.database)
                shown["thumbnail"] = str(picture) if picture is not None else None  # the PNG file, absolute
            records.append(record)
        print(json.dumps(records, indent=2))
    elif not studies:
        print(f"no studies in {study_db.database_folder(args.database)}")
    else:
        print(_table(studies))
    return 0


def _import(args: argparse.Namespace) -> int:
    from medviewer.commands.info import cli_progress
    from medviewer.services import study_db

    progress, close = cli_progress("Importing")
    try:
        report = study_db.import_files(args.folder, copy=args.copy, progress=progress, database=args.database)
    finally:
        close()
    if not args.no_thumbnails and report.series_uids:
        progress, close = cli_progress("Thumbnails")
        try:
            study_db.make_thumbnails(progress, database=args.database)
        finally:
            close()
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(f"{args.folder}: {report.summary()}")
        for skipped in report.skipped[:10]:
            print(f"  not indexed: {skipped}", file=sys.stderr)
        if len(report.skipped) > 10:
            print(f"  ... and {len(report.skipped) - 10} more not indexed", file=sys.stderr)
    return 0


def _remove(args: argparse.Namespace) -> int:
    from medviewer.services import study_db

    report = study_db.remove(args.uid, database=args.database)
    print(report.summary())
    return 0


@command("db", "the local study database: list, import a folder, remove a study or series", _add_arguments)
def run(args: argparse.Namespace) -> int:
    actions = {"list": _list, "import": _import, "remove": _remove}
    if args.db_command not in actions:
        print("medviewer: error: db needs an action: list, import DIR or remove UID", file=sys.stderr)
        return 2
    return actions[args.db_command](args)
