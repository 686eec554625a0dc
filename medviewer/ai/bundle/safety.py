"""What a bundle configuration would run, checked before MONAI's ``ConfigParser`` instantiates anything.

A bundle config is a program: ``_target_`` names any importable callable and a string starting with
``$`` is a Python expression MONAI evaluates. By default only ``monai.*`` and ``torch.*`` callables
(and MONAI's short component names, checked by what MONAI's ``ComponentLocator`` resolves them to:
an unknown short name would be looked up as a builtin such as ``open``) are allowed, plus the
network definition of the bundle's own ``scripts/`` package; ``$`` expressions, ``_mode_`` other than
``default`` (``debug`` starts pdb) and macros that pull in other files are refused. A few ``monai``
and ``torch`` callables that load pickles or import arbitrary modules are refused too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

#: short component name -> the monai module(s) defining it, or None (MONAI's ``ComponentLocator``)
Locator = Callable[[str], "list[str] | str | None"]

ALLOWED_PREFIXES = ("monai.", "torch.")
#: allowed by prefix but able to run or import arbitrary code
DENIED_PREFIXES = (
    "torch.load", "torch.hub", "torch.utils.cpp_extension", "torch.package", "torch.jit.load",
    "torch.serialization", "torch.compile", "torch.utils.data.DataLoader",
    "monai.bundle", "monai.utils.module", "monai.utils.optional_import", "monai.utils.look_up_option",
    "monai.apps", "monai.config.deviceconfig",
)
_SHORT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NETWORK_KEYS = ("network_def",)


@dataclass(frozen=True)
class Finding:
    """One thing the config would run that is not allowed by default; ``where`` is its config path."""

    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where or '<root>'}: {self.what}"


def scan_config(config: Any, bundle_folder: Path | None = None, locator: Locator | None = None) -> list[Finding]:
    """Every disallowed target, expression, mode or file macro anywhere in ``config`` (nested)."""
    if locator is None:
        from monai.bundle.config_item import ComponentLocator  # the lookup ConfigParser itself uses

        locator = ComponentLocator().get_component_module_name
    findings: list[Finding] = []
    _scan(config, "", findings, bundle_folder, locator)
    return findings


def _join(where: str, key: object) -> str:
    return f"{where}#{key}" if where else str(key)


def _scan(node: Any, where: str, findings: list[Finding], bundle_folder: Path | None, locator: Locator) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            path = _join(where, key)
            if key == "_target_":
                problem = target_problem(value, where, bundle_folder, locator)
                if problem:
                    findings.append(Finding(path, problem))
                continue
            if key == "_mode_" and value != "default":
                findings.append(Finding(path, f"_mode_ '{value}' (only 'default' is allowed; 'debug' runs pdb)"))
                continue
            if isinstance(key, str) and key.startswith("$"):
                findings.append(Finding(path, f"the key is a Python expression: {key!r}"))
            _scan(value, path, findings, bundle_folder, locator)
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            _scan(value, _join(where, index), findings, bundle_folder, locator)
    elif isinstance(node, str):
        text = node.strip()
        if text.startswith("$"):
            findings.append(Finding(where, f"Python expression {_short(text)}"))
        elif text.startswith("%") and not text.startswith("%#"):
            findings.append(Finding(where, f"macro {_short(text)} reads another file"))


def target_problem(target: Any, where: str, bundle_folder: Path | None, locator: Locator) -> str | None:
    """Why ``_target_`` ``target`` at config path ``where`` is refused, or None when it is allowed."""
    if not isinstance(target, str):
        return f"target {target!r} is not a name"
    name = target.strip()
    if name.startswith("$") or name.startswith("@") or name.startswith("%"):
        return f"target '{name}' is computed, not named"
    if _SHORT_NAME.match(name):
        modules = locator(name)
        if not modules:  # MONAI would then import the bare name: a builtin such as open or __import__
            return f"target '{name}' is not a MONAI component"
        for module in [modules] if isinstance(modules, str) else modules:
            problem = target_problem(f"{module}.{name}", where, bundle_folder, locator)
            if problem:
                return problem
        return None
    if name.startswith(ALLOWED_PREFIXES):
        denied = next((d for d in DENIED_PREFIXES if name == d or name.startswith(d + ".")), None)
        return f"target '{name}' can load or import arbitrary code" if denied else None
    if name.startswith("scripts.") and where in _NETWORK_KEYS and bundle_folder is not None:
        module = name.rsplit(".", 1)[0].replace(".", "/")
        if (bundle_folder / f"{module}.py").is_file() or (bundle_folder / module / "__init__.py").is_file():
            return None
        return f"target '{name}' is not a module in the bundle's scripts/ folder"
    return f"target '{name}' is not a monai.* or torch.* callable"


def _short(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")
