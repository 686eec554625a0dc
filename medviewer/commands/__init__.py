"""CLI subcommands, one module each; importing a module registers its command with ``medviewer.cli``.

Modules here must import heavy dependencies (Qt, torch) inside the command function
so that ``medviewer info`` starts quickly.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
