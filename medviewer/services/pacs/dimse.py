"""DICOM networking over DIMSE with pynetdicom: C-ECHO, C-FIND, C-GET, C-MOVE and C-STORE.

Every function takes a :class:`PacsNode` and our own AE title, connects, does one job
and releases the association. Long operations take ``progress(fraction, message)`` and
a :class:`CancelToken` like every medviewer job; a cancel aborts the association and
removes what this operation received. Failures raise :mod:`.errors` subclasses naming
the node: unreachable host/port, association rejected (with DICOM's reason, e.g. an
unknown AE title), timeout, or a failure status from the peer.
"""

from __future__ import annotations

import os
import ssl
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pynetdicom import AE, StoragePresentationContexts, build_context, build_role, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from medviewer.core.errors import OperationCancelled
from medviewer.core.jobs import NO_PROGRESS, CancelToken, ProgressCallback
from medviewer.services.pacs.errors import (
    AssociationRejectedError,
    PacsError,
    PacsTimeoutError,
    PacsUnreachableError,
    PartialRetrieveError,
)
from medviewer.services.pacs.nodes import PacsNode, check_ae_title
from medviewer.services.pacs.query import Query, result_from_dataset

MAX_CONTEXTS = 128  # DICOM limits an association to 128 presentation contexts
_PENDING = (0xFF00, 0xFF01)
_REJECT_REASONS = {  # (source, diagnostic) of A-ASSOCIATE-RJ, PS3.8 table 9-21
    (1, 1): "no reason given",
    (1, 2): "application context name not supported",
    (1, 3): "our calling AE title is not known to it",
    (1, 7): "the called AE title is not recognised",
    (2, 1): "no reason given (ACSE)",
    (2, 2): "protocol version not supported",
    (3, 1): "temporary congestion",
    (3, 2): "local limit exceeded",
}
# SOP classes always offered for C-GET (its storage sub-operations travel on our contexts)
_PREFERRED_STORAGE = (
    "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.4",
    "1.2.840.10008.5.1.4.1.1.4.1", "1.2.840.10008.5.1.4.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1",
    "1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.481.3", "1.2.840.10008.5.1.4.1.1.7",
    "1.2.840.10008.5.1.4.1.1.128", "1.2.840.10008.5.1.4.1.1.20", "1.2.840.10008.5.1.4.1.1.6.1",
    "1.2.840.10008.5.1.4.1.1.12.1", "1.2.840.10008.5.1.4.1.1.1.2", "1.2.840.10008.5.1.4.1.1.88.11",
)


@dataclass
class RetrieveResult:
    """What a C-GET / C-MOVE / WADO-RS brought in."""

    folder: Path
    files: list[Path] = field(default_factory=list)
    failed: int = 0
    warnings: int = 0
    #: the files that did not exist before (what a failed or cancelled study retrieve removes)
    created: list[Path] = field(default_factory=list)
    #: the local study database's ImportReport for these files (None: not indexed)
    database_report: object = None
    #: why indexing them failed ("" when it did not)
    database_error: str = ""


@dataclass
class StoreResult:
    """What a C-STORE / STOW-RS sent."""

    sent: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


# ---------------------------------------------------------------------------- association
def _make_ae(calling_ae_title: str, node: PacsNode) -> AE:
    ae = AE(ae_title=check_ae_title(calling_ae_title, "our (calling) AE title"))
    timeout = float(node.timeout_s)
    ae.connection_timeout = timeout
    ae.acse_timeout = timeout
    ae.dimse_timeout = timeout
    ae.network_timeout = timeout
    return ae


def _tls_args(node: PacsNode):
    if not node.tls:
        return None
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=node.tls_ca_file or None)
    except (OSError, ssl.SSLError) as error:
        raise PacsError(f"{node.describe()}: cannot load the TLS certificates '{node.tls_ca_file}': {error}") from None
    return (context, node.host)


def _tls_problem(node: PacsNode) -> str:
    """Why a TLS handshake with ``node`` fails ('' when TCP itself fails or the handshake works)."""
    import socket

    context, hostname = _tls_args(node)
    try:
        with socket.create_connection((node.host, int(node.port)), timeout=float(node.timeout_s)) as raw:
            try:
                with context.wrap_socket(raw, server_hostname=hostname):
                    return ""
            except ssl.SSLCertVerificationError as error:
                return f"the server's certificate is not trusted ({error.verify_message}); set the node's CA file"
            except (ssl.SSLError, OSError) as error:
                return f"handshake failed ({error})"
    except OSError:
        return ""


@contextmanager
def associate(ae: AE, node: PacsNode, handlers: list | None = None, roles: list | None = None) -> Iterator[Association]:
    """An established association with ``node``, released afterwards (aborted on error)."""
    node.validate()
    opened = threading.Event()
    events = [(evt.EVT_CONN_OPEN, lambda _event: opened.set())] + list(handlers or [])
    try:
        assoc = ae.associate(node.host, int(node.port), ae_title=node.ae_title, tls_args=_tls_args(node), evt_handlers=events,
                             ext_neg=roles or None)
    except (OSError, ValueError, ssl.SSLError) as error:
        raise PacsUnreachableError(f"{node.describe()}: cannot connect: {error}") from None
    if not assoc.is_established:
        if assoc.is_rejected:
            primitive = assoc.acceptor.primitive
            key = (getattr(primitive, "result_source", None), getattr(primitive, "diagnostic", None))
            reason = _REJECT_REASONS.get(key, f"source {key[0]}, reason {key[1]}")
            hint = ""
            if key == (1, 7):
                hint = f" (we called '{node.ae_title}'; check the node's AE title)"
            elif key == (1, 3):
                hint = f" (register AE title '{ae.ae_title}' on the PACS)"
            raise AssociationRejectedError(f"{node.describe()} rejected the association: {reason}{hint}")
        if not opened.is_set():
            if node.tls:
                problem = _tls_problem(node)
                if problem:
                    raise PacsError(f"{node.describe()}: TLS connection failed: {problem}")
            raise PacsUnreachableError(
                f"{node.describe()} is unreachable: no DICOM service answers at {node.host}:{node.port} "
                f"within {node.timeout_s:g} s (server down, wrong host or port, or a firewall)"
            )
        raise PacsTimeoutError(
            f"{node.describe()}: the connection opened but the association was not accepted within "
            f"{node.timeout_s:g} s ({'does the server expect TLS?' if not node.tls else 'is this a DICOM TLS port?'})"
        )
    try:
        yield assoc
    except BaseException:
        assoc.abort()
        raise
    else:
        if assoc.is_established:
            assoc.release()


def _check_alive(assoc: Association, node: PacsNode, what: str) -> None:
    if assoc.is_aborted or not assoc.is_established:
        raise PacsTimeoutError(f"{node.describe()}: {what} stopped: the association was aborted (no answer within {node.timeout_s:g} s or the server closed it)")


def _status_text(status: Dataset | None) -> str:
    if status is None or "Status" not in status:
        return "no answer (timeout or aborted association)"
    code = int(status.Status)
    comment = f": {status.ErrorComment}" if "ErrorComment" in status else ""
    return f"status 0x{code:04X}{comment}"


# ---------------------------------------------------------------------------- echo / find
def echo(node: PacsNode, calling_ae_title: str) -> None:
    """C-ECHO: raise a PacsError unless ``node`` answers with Success."""
    ae = _make_ae(calling_ae_title, node)
    ae.add_requested_context(Verification)
    with associate(ae, node) as assoc:
        status = assoc.send_c_echo()
        if status is None or int(status.get("Status", -1)) != 0:
            raise PacsError(f"{node.describe()}: C-ECHO failed: {_status_text(status)}")


def find(
    node: PacsNode,
    calling_ae_title: str,
    query: Query,
    progress: ProgressCallback = NO_PROGRESS,
    cancel: CancelToken | None = None,
) -> list[dict]:
    """C-FIND (Study Root) at study or series level; one dict per match, keyed by DICOM keyword."""
    cancel = cancel or CancelToken()
    query.validate()
    ae = _make_ae(calling_ae_title, node)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    keys = query.return_keys()
    results: list[dict] = []
    with associate(ae, node) as assoc:
        for status, identifier in assoc.send_c_find(query.identifier(), StudyRootQueryRetrieveInformationModelFind):
            if cancel.cancelled:
                raise OperationCancelled(f"{node.describe()}: query cancelled")
            if status is None or "Status" not in status:
                _check_alive(assoc, node, "C-FIND")
                raise PacsTimeoutError(f"{node.describe()}: C-FIND got no answer within {node.timeout_s:g} s")
            code = int(status.Status)
            if code in _PENDING and identifier is not None:
                results.append(result_from_dataset(identifier, keys))
                progress(0.0, f"{len(results)} {query.level} matches")
            elif code != 0:
                raise PacsError(f"{node.describe()}: C-FIND failed: {_status_text(status)}")
    progress(1.0, f"{len(results)} {query.level} matches")
    return results


# ---------------------------------------------------------------------------- receiving files
class _Sink:
    """Writes incoming C-STORE datasets into a folder, atomically and byte-exactly."""

    def __init__(self, folder: Path, cancel: CancelToken, study_uid: str = "", series_uid: str = "") -> None:
        self.folder = folder
        self.cancel = cancel
        self.study_uid = study_uid
        self.series_uid = series_uid
        self.files: list[Path] = []
        #: the files this retrieve created (a file that was already there, e.g. an earlier
        #: retrieve of the study the database points to, is never removed by a failure)
        self.created: list[Path] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def accepts(self, dataset: Dataset) -> bool:
        if self.series_uid:
            return dataset.get("SeriesInstanceUID", "") == self.series_uid
        return not self.study_uid or dataset.get("StudyInstanceUID", "") == self.study_uid

    def store(self, event) -> int:
        """Write one instance; the C-STORE status to answer."""
        if self.cancel.cancelled:
            return 0xA700  # out of resources: the user stopped the retrieve
        sop_uid = str(event.request.AffectedSOPInstanceUID)
        target = self.folder / f"{sop_uid}.dcm"
        temporary = self.folder / f".{sop_uid}.part"
        try:
            # the dataset as it travelled (preamble + file meta + encoded data set): bit-identical
            data = event.encoded_dataset(include_meta=True)
            with open(temporary, "wb") as handle:
                handle.write(data)
            new = not target.exists()
            os.replace(temporary, target)
        except OSError as error:
            temporary.unlink(missing_ok=True)
            with self.lock:
                self.errors.append(f"{target}: {error.strerror or error}")
            return 0xA700
        with self.lock:
            if target not in self.files:
                self.files.append(target)
            if new and target not in self.created:
                self.created.append(target)
        return 0x0000

    def discard(self) -> None:
        """Remove the files this retrieve created (cancelled or failed retrieve)."""
        for path in self.created:
            path.unlink(missing_ok=True)
        self.files.clear()
        self.created.clear()


def _storage_contexts(limit: int) -> list:
    """Storage presentation contexts for receiving, the common image SOP classes first."""
    by_uid = {context.abstract_syntax: context for context in StoragePresentationContexts}
    ordered = [by_uid[uid] for uid in _PREFERRED_STORAGE if uid in by_uid]
    ordered += [c for c in StoragePresentationContexts if c.abstract_syntax not in _PREFERRED_STORAGE]
    return [build_context(c.abstract_syntax, c.transfer_syntax) for c in ordered[:limit]]


def _retrieve_identifier(study_uid: str, series_uid: str) -> Dataset:
    if not study_uid and not series_uid:
        raise PacsError("a retrieve needs a study or series instance UID")
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES" if series_uid else "STUDY"
    ds.StudyInstanceUID = study_uid
    if series_uid:
        ds.SeriesInstanceUID = series_uid
    return ds


def _resolve_study(node: PacsNode, calling_ae_title: str, series_uid: str, study_uid: str) -> str:
    """Study UID of a series (Study Root retrieves at series level need it)."""
    if study_uid or not series_uid:
        return study_uid
    matches = find(node, calling_ae_title, Query(level="series", series_uid=series_uid))
    if not matches:
        raise PacsError(f"{node.describe()}: no series with UID {series_uid}")
    return str(matches[0]["StudyInstanceUID"])


def _run_retrieve(responses, assoc, node, sink, progress, cancel, what) -> RetrieveResult:
    """Follow C-GET/C-MOVE responses: progress from the sub-operation counts, cancel aborts."""
    final = None
    for status, _identifier in responses:
        if cancel.cancelled:
            assoc.abort()
            sink.discard()
            raise OperationCancelled(f"{node.describe()}: retrieve cancelled; the {what} files received so far were removed")
        if status is None or "Status" not in status:
            sink.discard()
            _check_alive(assoc, node, what)
            raise PacsTimeoutError(f"{node.describe()}: {what} got no answer within {node.timeout_s:g} s")
        final = status
        if int(status.Status) in _PENDING:
            done = int(status.get("NumberOfCompletedSuboperations", 0) or 0)
            left = int(status.get("NumberOfRemainingSuboperations", 0) or 0)
            bad = int(status.get("NumberOfFailedSuboperations", 0) or 0) + int(status.get("NumberOfWarningSuboperations", 0) or 0)
            total = done + left + bad
            progress(done / total if total else 0.0, f"{done} of {total} instances")
    if cancel.cancelled:
        sink.discard()
        raise OperationCancelled(f"{node.describe()}: retrieve cancelled; the {what} files received so far were removed")
    code = int(final.Status) if final is not None else -1
    failed = int(final.get("NumberOfFailedSuboperations", 0) or 0) if final is not None else 0
    warnings = int(final.get("NumberOfWarningSuboperations", 0) or 0) if final is not None else 0
    if sink.errors:
        sink.discard()
        raise PacsError(f"{node.describe()}: {what}: cannot write the received files: {sink.errors[0]}")
    if code == 0xFE00:
        sink.discard()
        raise OperationCancelled(f"{node.describe()}: the server cancelled the {what}")
    if code not in (0x0000, 0xB000) or failed:
        received = len(sink.files)
        sink.discard()
        if received or failed:
            raise PartialRetrieveError(
                f"{node.describe()}: {what} incomplete: {received} instances arrived, {failed} failed "
                f"({_status_text(final)}); nothing was kept, retry the retrieve", received, failed
            )
        raise PacsError(f"{node.describe()}: {what} failed: {_status_text(final)}")
    progress(1.0, f"{len(sink.files)} instances received")
    return RetrieveResult(Path(sink.folder), sorted(sink.files), failed, warnings, created=sorted(sink.created))


def get(
    node: PacsNode,
    calling_ae_title: str,
    destination: str | os.PathLike[str],
    study_uid: str = "",
    series_uid: str = "",
    progress: ProgressCallback = NO_PROGRESS,
    cancel: CancelToken | None = None,
) -> RetrieveResult:
    """C-GET a study or series into ``destination`` (one ``<SOPInstanceUID>.dcm`` per instance)."""
    cancel = cancel or CancelToken()
    folder = Path(destination)
    folder.mkdir(parents=True, exist_ok=True)
    study_uid = _resolve_study(node, calling_ae_title, series_uid, study_uid)
    ae = _make_ae(calling_ae_title, node)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    contexts = _storage_contexts(MAX_CONTEXTS - 1)
    for context in contexts:
        ae.add_requested_context(context.abstract_syntax, context.transfer_syntax)
    roles = [build_role(c.abstract_syntax, scp_role=True) for c in contexts]
    sink = _Sink(folder, cancel)
    handlers = [(evt.EVT_C_STORE, sink.store)]
    with associate(ae, node, handlers, roles) as assoc:
        responses = assoc.send_c_get(_retrieve_identifier(study_uid, series_uid), StudyRootQueryRetrieveInformationModelGet)
        return _run_retrieve(responses, assoc, node, sink, progress, cancel, "C-GET")


# ---------------------------------------------------------------------------- C-MOVE listener
class StorageListener:
    """Our C-STORE SCP for C-MOVE: started on demand, routes instances to the retrieve that asked."""

    def __init__(self, ae_title: str, port: int, address: str = "") -> None:
        self.ae_title = check_ae_title(ae_title, "our AE title")
        self.port = int(port)
        self.address = address
        self._sinks: list[_Sink] = []
        self._lock = threading.Lock()
        self._server = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def busy(self) -> bool:
        with self._lock:
            return bool(self._sinks)

    def start(self) -> None:
        if self._server is not None:
            return
        ae = AE(ae_title=self.ae_title)
        ae.supported_contexts = StoragePresentationContexts
        ae.add_supported_context(Verification)
        try:
            self._server = ae.start_server((self.address, self.port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._on_store)])
        except OSError as error:
            raise PacsError(f"cannot start our DICOM listener ({self.ae_title}) on port {self.port}: {error.strerror or error}") from None

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def _on_store(self, event) -> int:
        dataset = event.dataset
        with self._lock:
            sink = next((s for s in self._sinks if s.accepts(dataset)), None)
        if sink is None:
            return 0xA900  # not part of a retrieve we asked for
        return sink.store(event)

    @contextmanager
    def receiving(self, sink: _Sink) -> Iterator[_Sink]:
        with self._lock:
            self._sinks.append(sink)
        try:
            yield sink
        finally:
            with self._lock:
                self._sinks.remove(sink)


_listeners: dict[int, StorageListener] = {}
_listeners_lock = threading.Lock()


def listener_for(ae_title: str, port: int, address: str = "") -> StorageListener:
    """The running listener on ``port``, started if needed; it stays up for later moves.

    One listener per port: a request with another AE title or address replaces an idle
    listener and is refused while the current one is receiving a retrieve.
    """
    with _listeners_lock:
        listener = _listeners.get(int(port))
        if listener is not None and (listener.ae_title != ae_title or listener.address != address):
            if listener.busy:
                raise PacsError(f"our DICOM listener on port {port} is receiving for AE title '{listener.ae_title}'; "
                                f"wait for that retrieve to end or use another port")
            listener.stop()
            listener = None
        if listener is None:
            listener = _listeners[int(port)] = StorageListener(ae_title, port, address)
        listener.start()
        return listener


def stop_listeners() -> None:
    """Stop every listener started by ``listener_for`` (application exit, tests)."""
    with _listeners_lock:
        for listener in _listeners.values():
            listener.stop()
        _listeners.clear()


def move(
    node: PacsNode,
    calling_ae_title: str,
    destination: str | os.PathLike[str],
    listener_port: int,
    study_uid: str = "",
    series_uid: str = "",
    progress: ProgressCallback = NO_PROGRESS,
    cancel: CancelToken | None = None,
    listener_address: str = "",
) -> RetrieveResult:
    """C-MOVE a study or series to our own listener (AE ``calling_ae_title`` on ``listener_port``).

    The PACS must know our AE title with this machine's address and the listener port.
    """
    cancel = cancel or CancelToken()
    folder = Path(destination)
    folder.mkdir(parents=True, exist_ok=True)
    study_uid = _resolve_study(node, calling_ae_title, series_uid, study_uid)
    listener = listener_for(calling_ae_title, listener_port, listener_address)
    ae = _make_ae(calling_ae_title, node)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    with listener.receiving(_Sink(folder, cancel, study_uid, series_uid)) as sink, associate(ae, node) as assoc:
        responses = assoc.send_c_move(
            _retrieve_identifier(study_uid, series_uid), listener.ae_title, StudyRootQueryRetrieveInformationModelMove
        )
        try:
            return _run_retrieve(responses, assoc, node, sink, progress, cancel, "C-MOVE")
        except (PartialRetrieveError, PacsTimeoutError, OperationCancelled):
            raise
        except PacsError as error:
            # 0xA801 is "move destination unknown"; Orthanc and others answer a plain 0xC000 for it
            if "0xA801" in str(error) or "0xC" in str(error):
                raise PacsError(
                    f"{error}; the PACS may not know our AE title '{listener.ae_title}' as a move destination: "
                    f"register it there with this computer's address and port {listener.port}"
                ) from None
            raise


# ---------------------------------------------------------------------------- C-STORE
def _read_for_sending(path: Path) -> Dataset:
    try:
        return pydicom.dcmread(path)
    except (InvalidDicomError, OSError, ValueError, EOFError) as error:
        raise PacsError(f"{path}: cannot send: not a readable DICOM file ({error})") from None


def store(
    node: PacsNode,
    calling_ae_title: str,
    files: Sequence[str | os.PathLike[str]],
    progress: ProgressCallback = NO_PROGRESS,
    cancel: CancelToken | None = None,
) -> StoreResult:
    """C-STORE ``files`` to ``node``; raise PartialRetrieveError naming the files that failed."""
    cancel = cancel or CancelToken()
    paths = [Path(p) for p in files]
    if not paths:
        raise PacsError(f"{node.describe()}: nothing to send")
    headers: list[tuple[Path, str, str]] = []
    for path in paths:
        try:
            meta = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
        except (InvalidDicomError, OSError, ValueError, EOFError) as error:
            raise PacsError(f"{path}: cannot send: not a readable DICOM file ({error})") from None
        sop_class = str(meta.get("SOPClassUID", "") or getattr(meta.file_meta, "MediaStorageSOPClassUID", ""))
        syntax = str(getattr(meta.file_meta, "TransferSyntaxUID", "") or "1.2.840.10008.1.2")
        if not sop_class:
            raise PacsError(f"{path}: cannot send: the file has no SOP Class UID")
        headers.append((path, sop_class, syntax))
    ae = _make_ae(calling_ae_title, node)
    pairs: dict[str, set[str]] = {}
    for _path, sop_class, syntax in headers:
        pairs.setdefault(sop_class, set()).update({syntax, "1.2.840.10008.1.2.1", "1.2.840.10008.1.2"})
    if len(pairs) > MAX_CONTEXTS:
        raise PacsError(f"{node.describe()}: cannot send {len(pairs)} different SOP classes in one association (max {MAX_CONTEXTS})")
    for sop_class, syntaxes in pairs.items():
        ae.add_requested_context(sop_class, sorted(syntaxes))
    result = StoreResult()
    with associate(ae, node) as assoc:
        for index, (path, _sop_class, _syntax) in enumerate(headers):
            cancel.raise_if_cancelled()
            progress(index / len(headers), f"sending {path.name}")
            status = assoc.send_c_store(_read_for_sending(path))
            if status is None or "Status" not in status:
                _check_alive(assoc, node, "C-STORE")
                raise PacsTimeoutError(f"{node.describe()}: C-STORE of {path} got no answer within {node.timeout_s:g} s")
            code = int(status.Status)
            if code == 0 or (code & 0xF000) == 0xB000:
                result.sent.append(path)
            else:
                result.failed.append((path, _status_text(status)))
    progress(1.0, f"{len(result.sent)} files sent")
    if result.failed:
        first, why = result.failed[0]
        raise PartialRetrieveError(
            f"{node.describe()}: {len(result.failed)} of {len(paths)} files were refused (first: {first}: {why})",
            len(result.sent), len(result.failed),
        )
    return result
