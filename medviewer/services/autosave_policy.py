"""When to autosave: the cadence that bounds what a crash or a kill can lose.

An editor that keeps painting never pauses, so an "idle" rule alone never fires and
a fixed 60 s timer can lose a minute of work. The policy saves when the first of
these comes (all counted from the first change not yet in the recovery folder):

* the user paused for ``idle_s`` seconds;
* ``max_delay_s`` seconds of changes have piled up (continuous editing);
* edits touched ``max_changed_voxels`` voxels (a big operation, a model result);
* after a failed autosave, every ``retry_s`` seconds until one succeeds.

It is Qt-free and takes the clock as an argument, so the GUI asks it once a second
from a timer and tests drive it with a fake clock.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AutosavePolicy:
    """Thresholds of the autosave cadence (seconds and voxels)."""

    idle_s: float = 3.0
    max_delay_s: float = 15.0
    max_changed_voxels: int = 50_000
    retry_s: float = 10.0
    #: How often the GUI asks :meth:`Autosaver.autosave_if_due` (ms).
    tick_ms: int = 1000

    def describe(self) -> str:
        """One sentence for the README and tooltips."""
        return (f"autosaved {self.idle_s:g} s after you pause, and at the latest {self.max_delay_s:g} s "
                f"after the first unsaved change or once {self.max_changed_voxels:,} voxels changed")


@dataclass
class EditClock:
    """What happened since the last autosave: when changes started, the latest one, voxels touched."""

    first_change: float | None = None
    last_change: float | None = None
    changed_voxels: int = 0
    last_failure: float | None = None

    def record(self, now: float, voxels: int) -> None:
        if self.first_change is None:
            self.first_change = now
        self.last_change = now
        self.changed_voxels += int(voxels)

    def reset(self) -> None:
        self.first_change = self.last_change = None
        self.changed_voxels = 0
        self.last_failure = None

    def due(self, policy: AutosavePolicy, now: float) -> bool:
        """True when ``policy`` says the pending changes should be written now."""
        if self.first_change is None:
            return False
        if self.last_failure is not None:
            return now - self.last_failure >= policy.retry_s
        return (
            now - (self.last_change or now) >= policy.idle_s
            or now - self.first_change >= policy.max_delay_s
            or self.changed_voxels >= policy.max_changed_voxels
        )
