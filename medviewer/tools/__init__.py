"""Qt-free editing tools over abstract pointer events, and the undoable edits they make."""
