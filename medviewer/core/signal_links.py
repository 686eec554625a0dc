"""Connections that are made together and undone together.

A view (2D or 3D) follows the open document through the same six signals and drops
them all when another document replaces it; writing the list twice per view (connect,
disconnect) in every view is how one of them ends up forgotten.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

#: The document signals a view redraws on; the view's slot for ``name`` is ``_on_<name>``.
VIEW_EVENTS = (
    "cursor_moved", "labels_changed", "label_maps_changed", "label_table_changed", "detections_changed",
    "selection_changed",
)


class SignalLinks:
    """A set of (psygnal signal, slot) connections; :meth:`disconnect` undoes every one of them."""

    def __init__(self, pairs: Iterable[tuple[Any, Callable]]) -> None:
        self.pairs = list(pairs)
        for signal, slot in self.pairs:
            signal.connect(slot)

    @classmethod
    def follow(cls, source: Any, follower: Any, names: Iterable[str] = VIEW_EVENTS) -> "SignalLinks":
        """Connect each signal ``name`` of ``source`` to ``follower._on_<name>``."""
        return cls((getattr(source, name), getattr(follower, f"_on_{name}")) for name in names)

    def disconnect(self) -> None:
        for signal, slot in self.pairs:
            try:
                signal.disconnect(slot)
            except (ValueError, RuntimeError):  # already gone (e.g. the follower was deleted)
                pass
        self.pairs = []
