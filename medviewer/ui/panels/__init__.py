"""Dockable panels of the main window: study browser, layers, detections, measurements."""
