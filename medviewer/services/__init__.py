"""Use cases combining io, imaging, ai and tools; callable from the GUI, the CLI and tests."""
