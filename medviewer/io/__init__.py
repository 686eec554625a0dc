"""Readers and writers: DICOM, NIfTI, NRRD, MHA/MHD, 2D images, label maps, datasets."""
