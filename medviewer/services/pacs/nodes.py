"""PACS nodes and our own DICOM identity, kept in ``pacs.json`` beside the settings file.

A node is either a DIMSE peer (AE title, host, port, optional TLS) or a DICOMweb
service (base URL, optional basic or bearer authentication). Passwords and tokens are
never written to the file: they live in the operating system's keyring (``keyring``),
keyed by the node name. The file sits in ``medviewer.core.paths.config_dir()`` next to
``settings.json``; it has its own file because its entries are structured (the general
settings loader keeps to flat strings and lists). Reading never fails: a missing or
damaged file gives an empty node list and the default identity.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from medviewer.core.paths import config_dir
from medviewer.io.atomic import atomic_write_text
from medviewer.services.pacs.errors import PacsConfigError

PACS_FILE = "pacs.json"
KEYRING_SERVICE = "medviewer-pacs"
DEFAULT_AE_TITLE = "MEDVIEWER"
DEFAULT_LISTENER_PORT = 11112
DEFAULT_TIMEOUT_S = 30.0
AUTH_KINDS = ("none", "basic", "bearer")
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # DICOM AE: 16 chars, no backslash or controls


def check_ae_title(ae_title: str, what: str = "AE title") -> str:
    """``ae_title`` stripped, or a PacsConfigError saying what is wrong with it."""
    value = ae_title.strip()
    if not value or not _AE_TITLE.match(value):
        raise PacsConfigError(f"{what} '{ae_title}' is invalid: use 1 to 16 printable characters, no backslash")
    return value


@dataclass
class PacsNode:
    """One remote server. ``dicomweb_url`` set means a DICOMweb node, otherwise DIMSE."""

    name: str
    ae_title: str = ""
    host: str = ""
    port: int = 104
    tls: bool = False
    #: CA bundle that signs the server's certificate (TLS); empty: the system's default store.
    tls_ca_file: str = ""
    dicomweb_url: str = ""
    auth: str = "none"  # "none", "basic" (username + keyring password) or "bearer" (keyring token)
    username: str = ""
    timeout_s: float = DEFAULT_TIMEOUT_S
    #: Retrieve with C-MOVE to our listener instead of C-GET.
    use_move: bool = False

    @property
    def is_dicomweb(self) -> bool:
        return bool(self.dicomweb_url)

    def describe(self) -> str:
        """How error messages name the node: ``'name' (AET@host:port)`` or ``'name' (URL)``."""
        where = self.dicomweb_url if self.is_dicomweb else f"{self.ae_title}@{self.host}:{self.port}"
        return f"PACS '{self.name}' ({where})" if self.name else f"PACS {where}"

    def validate(self) -> "PacsNode":
        """Raise PacsConfigError for a node that cannot be contacted as configured."""
        if self.auth not in AUTH_KINDS:
            raise PacsConfigError(f"{self.describe()}: unknown authentication '{self.auth}' (use {', '.join(AUTH_KINDS)})")
        if self.is_dicomweb:
            if not re.match(r"^https?://", self.dicomweb_url):
                raise PacsConfigError(f"{self.describe()}: the DICOMweb URL must start with http:// or https://")
            if self.auth == "basic" and not self.username:
                raise PacsConfigError(f"{self.describe()}: basic authentication needs a user name")
            return self
        check_ae_title(self.ae_title, f"{self.describe()}: called AE title")
        if not self.host.strip():
            raise PacsConfigError(f"{self.describe()}: no host name")
        if not 1 <= int(self.port) <= 65535:
            raise PacsConfigError(f"{self.describe()}: port {self.port} is not in 1..65535")
        if self.timeout_s <= 0:
            raise PacsConfigError(f"{self.describe()}: the timeout must be positive")
        return self


@dataclass
class PacsConfig:
    """Our identity on the network and the known nodes."""

    ae_title: str = DEFAULT_AE_TITLE
    listener_port: int = DEFAULT_LISTENER_PORT
    #: Interface the C-MOVE listener binds to ("" = all interfaces).
    listener_address: str = ""
    nodes: list[PacsNode] = field(default_factory=list)

    def node(self, name: str) -> PacsNode:
        for node in self.nodes:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.nodes) or "none configured"
        raise PacsConfigError(f"no PACS node named '{name}' (known: {known})")

    def set_node(self, node: PacsNode) -> None:
        """Add ``node`` or replace the node of the same name."""
        node.validate()
        self.nodes = [n for n in self.nodes if n.name != node.name] + [node]

    def remove_node(self, name: str) -> None:
        self.nodes = [n for n in self.nodes if n.name != name]
        delete_secret(name)


def pacs_config_path() -> Path:
    return config_dir() / PACS_FILE


def _node_from_dict(data: dict) -> PacsNode | None:
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not data["name"]:
        return None
    node = PacsNode(name=data["name"])
    for spec in fields(PacsNode):
        value = data.get(spec.name)
        default = getattr(node, spec.name)
        if value is None or spec.name == "name":
            continue
        if isinstance(default, bool):
            if isinstance(value, bool):
                setattr(node, spec.name, value)
        elif isinstance(default, (int, float)) and isinstance(value, (int, float)) and not isinstance(value, bool):
            setattr(node, spec.name, type(default)(value))
        elif isinstance(default, str) and isinstance(value, str):
            setattr(node, spec.name, value)
    return node


def load_pacs_config(path: Path | None = None) -> PacsConfig:
    """The PACS configuration from disk; defaults for anything missing or malformed."""
    path = path or pacs_config_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return PacsConfig()
    config = PacsConfig()
    if not isinstance(data, dict):
        return config
    if isinstance(data.get("ae_title"), str) and _AE_TITLE.match(data["ae_title"].strip() or "-"):
        config.ae_title = data["ae_title"].strip()
    if isinstance(data.get("listener_port"), int) and 1 <= data["listener_port"] <= 65535:
        config.listener_port = data["listener_port"]
    if isinstance(data.get("listener_address"), str):
        config.listener_address = data["listener_address"]
    nodes = data.get("nodes") if isinstance(data.get("nodes"), list) else []
    config.nodes = [n for n in (_node_from_dict(d) for d in nodes) if n is not None]
    return config


def save_pacs_config(config: PacsConfig, path: Path | None = None) -> None:
    """Write the configuration atomically (secrets are not part of it)."""
    check_ae_title(config.ae_title, "our AE title")
    atomic_write_text(path or pacs_config_path(), json.dumps(asdict(config), indent=2))


# ---------------------------------------------------------------------------- secrets (keyring)
def set_secret(node_name: str, secret: str) -> None:
    """Store the node's password or bearer token in the OS keyring."""
    import keyring
    from keyring.errors import KeyringError

    try:
        keyring.set_password(KEYRING_SERVICE, node_name, secret)
    except KeyringError as error:
        raise PacsConfigError(f"PACS '{node_name}': cannot store the secret in the system keyring: {error}") from None


def get_secret(node_name: str) -> str | None:
    """The node's password or token from the OS keyring, None when there is none."""
    import keyring
    from keyring.errors import KeyringError

    try:
        return keyring.get_password(KEYRING_SERVICE, node_name)
    except KeyringError as error:
        raise PacsConfigError(f"PACS '{node_name}': cannot read the secret from the system keyring: {error}") from None


def delete_secret(node_name: str) -> None:
    import keyring
    from keyring.errors import KeyringError, PasswordDeleteError

    try:
        keyring.delete_password(KEYRING_SERVICE, node_name)
    except PasswordDeleteError:
        pass  # nothing stored: nothing to delete
    except KeyringError as error:
        raise PacsConfigError(f"PACS '{node_name}': cannot delete the secret from the system keyring: {error}") from None
