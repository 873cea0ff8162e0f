"""Spectra: a Conv1D classifier with template redshift fits in its graph, fed from JSON or FITS files."""
