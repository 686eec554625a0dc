"""Bundles the user trusts to run any code their configuration names, remembered per bundle hash.

The hash covers every file that decides what runs (``configs/`` and ``scripts/``), so an edited
bundle is untrusted again. Weights are not hashed: they load without unpickling code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from medviewer.core.paths import config_dir
from medviewer.io.atomic import atomic_write_text

TRUST_FILE = "trusted_bundles.json"
_HASHED_FOLDERS = ("configs", "scripts")


def bundle_hash(folder: str | Path) -> str:
    """SHA-256 over the relative paths and contents of the bundle's configs/ and scripts/ files."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for sub in _HASHED_FOLDERS:
        root = folder / sub
        if not root.is_dir():
            continue
        for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _load() -> dict[str, str]:
    try:
        data = json.loads((config_dir() / TRUST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    bundles = data.get("bundles") if isinstance(data, dict) else None
    return {k: str(v) for k, v in bundles.items()} if isinstance(bundles, dict) else {}


def is_trusted(folder: str | Path) -> bool:
    return bundle_hash(folder) in _load()


def set_trusted(folder: str | Path, trusted: bool) -> None:
    """Remember (or forget) that the bundle in ``folder``, as it is now, may run any code."""
    bundles = _load()
    key = bundle_hash(folder)
    if trusted:
        bundles[key] = str(Path(folder))
    else:
        bundles.pop(key, None)
    atomic_write_text(config_dir() / TRUST_FILE, json.dumps({"bundles": bundles}, indent=2) + "\n")
