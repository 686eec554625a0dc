"""DICOMweb with dicomweb-client: QIDO-RS search, WADO-RS series retrieve, STOW-RS store.

Same shapes as the DIMSE functions (:mod:`.dimse`): search results are dicts keyed by
DICOM keyword, retrieves write ``<SOPInstanceUID>.dcm`` files into a folder, long work
takes progress and a cancel token, and failures raise :mod:`.errors` naming the node.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from medviewer.core.errors import OperationCancelled
from medviewer.core.jobs import NO_PROGRESS, CancelToken, ProgressCallback
from medviewer.services.pacs.dimse import RetrieveResult, StoreResult
from medviewer.services.pacs.errors import (
    PacsAuthenticationError,
    PacsConfigError,
    PacsError,
    PacsTimeoutError,
    PacsUnreachableError,
    PartialRetrieveError,
)
from medviewer.services.pacs.nodes import PacsNode, get_secret
from medviewer.services.pacs.query import Query, result_from_dataset


def client_for(node: PacsNode):
    """A ``DICOMwebClient`` for ``node`` with its authentication (secret from the keyring)."""
    import requests
    from dicomweb_client.api import DICOMwebClient

    node.validate()
    if not node.is_dicomweb:
        raise PacsConfigError(f"{node.describe()} is not a DICOMweb node (no URL)")
    session = requests.Session()
    headers: dict[str, str] = {}
    if node.auth != "none":
        secret = get_secret(node.name)
        if not secret:
            raise PacsConfigError(f"{node.describe()}: no {'password' if node.auth == 'basic' else 'token'} in the system keyring")
        if node.auth == "basic":
            session.auth = (node.username, secret)
        else:
            headers["Authorization"] = f"Bearer {secret}"
    client = DICOMwebClient(url=node.dicomweb_url.rstrip("/"), session=session, headers=headers or None, timeout=float(node.timeout_s))
    # the library retries five times with exponential waits by default: an unreachable server
    # would take ~30 s to report, past the configured timeout; the user retries instead
    client.set_http_retry_params(retry=False)
    return client


@contextmanager
def _http_errors(node: PacsNode, what: str) -> Iterator[None]:
    """Turn requests' exceptions into PacsErrors naming the node."""
    import requests

    try:
        yield
    except requests.exceptions.Timeout:
        raise PacsTimeoutError(f"{node.describe()}: {what} got no answer within {node.timeout_s:g} s") from None
    except requests.exceptions.ConnectionError as error:
        raise PacsUnreachableError(f"{node.describe()} is unreachable ({what}): {_connection_reason(error)}") from None
    except requests.exceptions.HTTPError as error:
        code = error.response.status_code if error.response is not None else 0
        if code in (401, 403):
            raise PacsAuthenticationError(f"{node.describe()}: {what} refused: HTTP {code} (check the user name and secret)") from None
        raise PacsError(f"{node.describe()}: {what} failed: HTTP {code} {_short(error)}") from None
    except requests.exceptions.RequestException as error:
        raise PacsError(f"{node.describe()}: {what} failed: {_short(error)}") from None


def _connection_reason(error: BaseException) -> str:
    """The OS-level cause inside requests' long "Max retries exceeded with url..." text."""
    found = re.search(r"\[Errno -?\d+\] [^'\")\]]+", str(error))
    return found.group(0).strip() if found else "the connection failed"


def _short(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:300]


def search(node: PacsNode, query: Query) -> list[dict]:
    """QIDO-RS at study or series level, with the same fields as C-FIND."""
    query.validate()
    client = client_for(node)
    filters = dict(query.match_keys())
    keys = query.return_keys()
    with _http_errors(node, "QIDO-RS search"):
        if query.level == "study":
            answers = client.search_for_studies(search_filters=filters, fields=list(keys), get_remaining=True)
        else:
            study = filters.pop("StudyInstanceUID", None)
            answers = client.search_for_series(study_instance_uid=study, search_filters=filters, fields=list(keys), get_remaining=True)
    return [result_from_dataset(Dataset.from_json(answer), keys) for answer in answers]


def retrieve_series(
    node: PacsNode,
    destination: str | os.PathLike[str],
    study_uid: str,
    series_uid: str,
    progress: ProgressCallback = NO_PROGRESS,
    cancel: CancelToken | None = None,
) -> RetrieveResult:
    """WADO-RS one series into ``destination``; a cancel or failure removes what arrived."""
    cancel = cancel or CancelToken()
    folder = Path(destination)
    folder.mkdir(parents=True, exist_ok=True)
    client = client_for(node)
    with _http_errors(node, "instance count"):
        metadata = client.search_for_instances(study_instance_uid=study_uid, series_instance_uid=series_uid,
                                               fields=["SOPInstanceUID"], get_remaining=True)
    total = len(metadata)
    if total == 0:
        raise PacsError(f"{node.describe()}: no instances in series {series_uid}")
    written: list[Path] = []
    created: list[Path] = []  # only these go on failure: a file already there stays (the database may use it)

    def discard() -> None:
        for path in created:
            path.unlink(missing_ok=True)

    try:
        with _http_errors(node, "WADO-RS retrieve"):
            for dataset in client.iter_series(study_uid, series_uid):
                if cancel.cancelled:
                    raise OperationCancelled(f"{node.describe()}: retrieve cancelled; the files received so far were removed")
                target = folder / f"{dataset.SOPInstanceUID}.dcm"
                temporary = folder / f".{dataset.SOPInstanceUID}.part"
                try:
                    dataset.save_as(temporary, enforce_file_format=True)
                    if not target.exists():
                        created.append(target)
                    os.replace(temporary, target)
                except OSError as error:
                    temporary.unlink(missing_ok=True)
                    raise PacsError(f"{target}: cannot write the retrieved instance: {error.strerror or error}") from None
                written.append(target)
                progress(len(written) / total, f"{len(written)} of {total} instances")
    except BaseException:
        discard()
        raise
    if len(written) < total:
        discard()
        raise PartialRetrieveError(f"{node.describe()}: WADO-RS incomplete: {len(written)} of {total} instances arrived; nothing was kept, retry", len(written), total - len(written))
    return RetrieveResult(folder, sorted(written), created=sorted(created))


def store(
    node: PacsNode,
    files: Sequence[str | os.PathLike[str]],
    progress: ProgressCallback = NO_PROGRESS,
    cancel: CancelToken | None = None,
) -> StoreResult:
    """STOW-RS ``files`` (one request per file, so progress and cancel work between files)."""
    cancel = cancel or CancelToken()
    paths = [Path(p) for p in files]
    if not paths:
        raise PacsError(f"{node.describe()}: nothing to send")
    client = client_for(node)
    result = StoreResult()
    for index, path in enumerate(paths):
        cancel.raise_if_cancelled()
        progress(index / len(paths), f"sending {path.name}")
        try:
            dataset = pydicom.dcmread(path)
        except (InvalidDicomError, OSError, ValueError, EOFError) as error:
            raise PacsError(f"{path}: cannot send: not a readable DICOM file ({error})") from None
        with _http_errors(node, f"STOW-RS of {path.name}"):
            answer = client.store_instances(datasets=[dataset])
        failed = answer.get("FailedSOPSequence") if answer is not None else None
        if failed:
            result.failed.append((path, f"refused by the server ({failed})"))
        else:
            result.sent.append(path)
    progress(1.0, f"{len(result.sent)} files sent")
    if result.failed:
        first, why = result.failed[0]
        raise PartialRetrieveError(f"{node.describe()}: {len(result.failed)} of {len(paths)} files were refused (first: {first}: {why})",
                                   len(result.sent), len(result.failed))
    return result
