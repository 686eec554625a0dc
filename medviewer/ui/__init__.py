"""Everything Qt: main window, slice views (pyqtgraph), 3D view (VTK), panels, dialogs, job runners."""
