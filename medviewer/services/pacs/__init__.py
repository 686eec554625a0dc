"""DICOM networking: PACS nodes, C-ECHO/C-FIND/C-GET/C-MOVE/C-STORE (pynetdicom) and DICOMweb.

``operations`` picks DIMSE or DICOMweb from the node, so callers (GUI, CLI) do not care
which protocol a node speaks.
"""
