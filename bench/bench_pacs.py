"""Retrieve a 512x512x300 CT from a local Orthanc: C-GET, C-MOVE and WADO-RS throughput.

The CT is bench_load's synthetic series (cached). A private Orthanc (tests/services/
orthanc_server.py; loopback ports, temporary storage) is seeded over its REST API, then
each retrieve runs ``repeats`` times into a fresh folder. Reference: the same
files fetched one by one over Orthanc's REST API (``/instances/ID/file``, plain HTTP,
same server, same run). Figures: MB/s of pixel data + headers received, and the time until the series is
complete on disk (with a single series, the time until it can be opened).
Without Orthanc the benchmark returns no rows (install: apt-get install orthanc orthanc-dicomweb).

Run: ``.venv/bin/python bench/bench_pacs.py`` (add ``--quick`` for one run each).
"""

from __future__ import annotations

import base64
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import Row, print_table  # noqa: I001 - sets sys.path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_load import SLICES, SIZE, dataset  # noqa: E402

from medviewer.services.pacs import dimse, operations  # noqa: E402
from medviewer.services.pacs.nodes import PacsConfig, PacsNode, set_secret  # noqa: E402
from tests.services.orthanc_server import (  # noqa: E402
    HTTP_PASSWORD, HTTP_USER, LOOPBACK, ORTHANC_AET, OrthancServer, free_port, orthanc_binary,
)

OUR_AE = "MEDVIEWERBENCH"


def _memory_keyring():
    import keyring
    from keyring.backend import KeyringBackend

    class Memory(KeyringBackend):
        priority = 1
        secrets: dict = {}

        def get_password(self, service, username):
            return self.secrets.get((service, username))

        def set_password(self, service, username, password):
            self.secrets[(service, username)] = password

        def delete_password(self, service, username):
            self.secrets.pop((service, username), None)

    keyring.set_keyring(Memory())


def _timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def collect(repeats: int = 3) -> list[Row]:
    if orthanc_binary() is None:
        print("bench_pacs: Orthanc is not installed (apt-get install orthanc orthanc-dicomweb); no rows", file=sys.stderr)
        return []
    _memory_keyring()
    folder, _nifti = dataset(SLICES)
    files = sorted(folder.glob("*.dcm"))
    megabytes = sum(p.stat().st_size for p in files) / 1e6
    work = Path(tempfile.mkdtemp(prefix="bench-pacs-"))
    listener_port = free_port()
    server = OrthancServer(work / "orthanc", {"bench": (OUR_AE, listener_port)}).start()
    try:
        server.upload(files)
        series_uid = server.rest(f"/instances/{server.rest('/instances')[0]}/tags?simplify")["SeriesInstanceUID"]
        series_id = server.rest("/series")[0]
        node = PacsNode(name="bench", ae_title=ORTHANC_AET, host=LOOPBACK, port=server.dicom_port, timeout_s=60)
        web = PacsNode(name="bench-web", dicomweb_url=server.dicomweb_url, auth="basic", username=HTTP_USER, timeout_s=60)
        set_secret(web.name, HTTP_PASSWORD)
        config = PacsConfig(ae_title=OUR_AE, listener_port=listener_port, listener_address=LOOPBACK)
        counter = iter(range(10_000))

        def target() -> Path:
            path = work / f"out{next(counter)}"
            return path

        def check(result) -> None:
            if len(result.files) != len(files):
                raise RuntimeError(f"retrieved {len(result.files)} of {len(files)} files")
            shutil.rmtree(result.folder)

        instance_ids = server.rest(f"/series/{series_id}")["Instances"]

        def rest_files() -> None:
            out = work / "rest"
            out.mkdir(exist_ok=True)
            for instance in instance_ids:
                request = urllib.request.Request(f"{server.http_url}/instances/{instance}/file")
                request.add_header("Authorization", f"Basic {token}")
                with urllib.request.urlopen(request, timeout=120) as answer, open(out / f"{instance}.dcm", "wb") as handle:
                    shutil.copyfileobj(answer, handle, 1 << 20)
            shutil.rmtree(out)

        token = base64.b64encode(f"{HTTP_USER}:{HTTP_PASSWORD}".encode()).decode()
        reference = _timed(rest_files, repeats)
        get_s = _timed(lambda: check(dimse.get(node, OUR_AE, target(), series_uid=series_uid)), repeats)
        move_s = _timed(lambda: check(dimse.move(node, OUR_AE, target(), listener_port, series_uid=series_uid,
                                                 listener_address=LOOPBACK)), repeats)
        web.use_move = False
        wado_s = _timed(lambda: check(operations.retrieve(web, config, target(), series_uid=series_uid)), repeats)
    finally:
        dimse.stop_listeners()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    name = "REST GET of each file"
    what = f"{SIZE}x{SIZE}x{SLICES} CT, {megabytes:.0f} MB"
    return [
        Row(f"C-GET series ({what})", megabytes / get_s, "MB/s", megabytes / reference, name),
        Row("C-GET: series complete (openable)", get_s, "s", reference, name),
        Row(f"C-MOVE series ({what})", megabytes / move_s, "MB/s", megabytes / reference, name),
        Row(f"WADO-RS series ({what})", megabytes / wado_s, "MB/s", megabytes / reference, name),
        Row("WADO-RS: series complete (openable)", wado_s, "s", reference, name),
    ]


def main() -> None:
    repeats = 1 if "--quick" in sys.argv else 3
    print_table(collect(repeats), f"bench_pacs: retrieve from a local Orthanc (median of {repeats})")


if __name__ == "__main__":
    main()
