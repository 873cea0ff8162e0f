"""Readers for the FITS files survey pipelines publish: LAMOST, SDSS spec-lite and DESI coadds.

One module for evaluation (``python -m training spectra evaluate`` reads the real
spectra with it) and the service (``POST /v1/spectra/fits``), so both see the same
wavelengths, flux and inverse variance, which then go through
:func:`app.tasks.spectra.grid.resample_to_model_grid` like any spectrum a
caller sends.

Layouts recognised, by what the file holds rather than its name:

- **LAMOST, image**: primary image ``[≥2, npix]`` (flux, inverse variance, …) with a
  log-linear wavelength solution in ``COEFF0``/``COEFF1`` (or ``CRVAL1``/``CD1_1``
  with ``DC-FLAG = 1``); the layout of the pilot survey and DR1–DR7.
- **LAMOST, table**: a binary table with one row whose ``WAVELENGTH``, ``FLUX`` and
  ``IVAR`` cells are arrays (DR8 onwards, extension ``COADD``).
- **SDSS spec-lite / spec**: HDU 1 a table with a row per pixel, columns
  ``loglam``, ``flux``, ``ivar``.
- **DESI coadd**: ``B_``/``R_``/``Z_`` ``WAVELENGTH``, ``FLUX`` ``[nspec, npix]``,
  ``IVAR`` (and ``MASK``); the three arms overlap and are combined, inverse-variance
  weighted, into one spectrum per row; ``FIBERMAP`` names each row's ``TARGETID``.

Gzip-compressed files are read as well. A file is opened by :mod:`app.tasks.spectra.fits_guard`
(bounded decompression and headers), and each layout's declared rows and pixels are checked
against :class:`FileLimits` before its data are read. Anything else raises
:class:`SpectrumFileError` with a message meant for the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, TypeVar

import numpy as np

from app.tasks.spectra.fits_guard import ByteBudget, SpectrumFileError, open_fits

__all__ = ["FITS_SUFFIXES", "ByteBudget", "FileLimits", "ObservedSpectrum", "SpectrumFileError", "iter_spectra", "read_spectra"]

# What a FITS file is called on disk (the readers go by content; folder scans go by name). The
# Python client keeps its own copy, being installable without the service; a test keeps them equal.
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")
DESI_ARMS = ("B", "R", "Z")
T = TypeVar("T")
LAMOST_IMAGE_ROWS = 16  # flux, inverse variance, wavelength, and masks: LAMOST images have 5


@dataclass(frozen=True)
class FileLimits:
    """What one file may hold, checked from its headers before its data are read."""

    max_bytes: int = 64 << 20  # once decompressed (a ByteBudget can span several files)
    max_spectra: int = 500
    max_pixels: int = 20_000  # per spectrum; the JSON spectra's cap on points


@dataclass
class ObservedSpectrum:
    """One spectrum as a survey published it: vacuum wavelengths (Å), flux and inverse variance
    (0 = bad pixel), with the row it came from and what the file says about it (``meta``)."""

    wavelength: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray
    layout: str
    row: int | None = None
    meta: dict = field(default_factory=dict)


def _column(table, *names: str) -> np.ndarray | None:
    lowered = {n.lower(): n for n in table.columns.names}
    for name in names:
        if name.lower() in lowered:
            return np.asarray(table[lowered[name.lower()]], dtype=np.float64)
    return None


def _clean(wavelength: np.ndarray, flux: np.ndarray, ivar: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bad pixels (non-finite or non-positive ivar, non-finite flux) get ivar 0 and flux 0."""
    wavelength = np.asarray(wavelength, dtype=np.float64).ravel()
    flux = np.asarray(flux, dtype=np.float64).ravel()
    ivar = np.asarray(ivar, dtype=np.float64).ravel()
    good = np.isfinite(flux) & np.isfinite(ivar) & (ivar > 0)
    return wavelength, np.where(good, flux, 0.0), np.where(good, ivar, 0.0)


def _header_meta(header) -> dict:
    """What the survey's pipeline said (class, subclass, redshift, ids): text and finite numbers only."""
    meta = {}
    for key in ("CLASS", "SUBCLASS", "Z", "Z_ERR", "OBSID", "DESIG", "OBJNAME"):
        value = header.get(key)
        if isinstance(value, str) and value.strip():
            meta[key.lower()] = value.strip()[:80]
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
            meta[key.lower()] = value
    return meta


def _declared_shape(hdu) -> tuple[int, ...]:
    """The data shape a header declares (slowest axis first, like numpy), without reading the data."""
    header = hdu.header
    return tuple(int(header.get(f"NAXIS{i}", 0)) for i in range(int(header.get("NAXIS", 0)), 0, -1))


def _declared_rows(hdu) -> int:
    """The rows a table's header declares (``NAXIS2``), without reading the table."""
    return int(hdu.header.get("NAXIS2", 0))


def _within(what: str, count: int, limit: int, unit: str) -> None:
    if count > limit:
        raise SpectrumFileError(f"{what} {count:,} {unit}; at most {limit:,} are read")


# Each reader below recognises its layout from the headers alone and returns None for another
# layout; for its own it checks the declared sizes against the limits, then returns the spectra to come.


def _lamost_image(hdus, limits: FileLimits) -> Iterator[ObservedSpectrum] | None:
    header = hdus[0].header
    shape = _declared_shape(hdus[0])
    if len(shape) != 2 or shape[0] < 2:
        return None
    _within("holds a LAMOST-style image of", shape[1], limits.max_pixels, "pixels per row")
    _within("holds a LAMOST-style image of", shape[0], LAMOST_IMAGE_ROWS, "rows")
    if "COEFF0" in header and "COEFF1" in header:
        loglam0, dloglam = header["COEFF0"], header["COEFF1"]
    elif "CRVAL1" in header and "CD1_1" in header and header.get("DC-FLAG") == 1:
        loglam0, dloglam = header["CRVAL1"], header["CD1_1"]
    else:
        raise SpectrumFileError(
            "holds a LAMOST-style image but no wavelength solution (COEFF0/COEFF1, or CRVAL1/CD1_1 with DC-FLAG = 1)"
        )

    def spectra() -> Iterator[ObservedSpectrum]:
        data = hdus[0].data
        loglam = float(loglam0) + float(dloglam) * np.arange(data.shape[1])
        yield ObservedSpectrum(*_clean(10.0**loglam, data[0], data[1]), "lamost", meta=_header_meta(header))

    return spectra()


def _lamost_table(hdus, limits: FileLimits) -> Iterator[ObservedSpectrum] | None:
    for hdu in hdus[1:]:
        if getattr(hdu, "columns", None) is None or not {"WAVELENGTH", "FLUX", "IVAR"} <= {n.upper() for n in hdu.columns.names}:
            continue
        rows = _declared_rows(hdu)
        if rows == 0:
            continue
        _within("has a table of", rows, limits.max_spectra, "spectra")

        def spectra(hdu=hdu, rows=rows) -> Iterator[ObservedSpectrum]:
            columns = {n.upper(): n for n in hdu.columns.names}
            meta = _header_meta(hdus[0].header)
            for row in range(rows):
                cells = [hdu.data[columns[c]][row] for c in ("WAVELENGTH", "FLUX", "IVAR")]
                if any(np.ndim(cell) != 1 for cell in cells):
                    raise SpectrumFileError("has WAVELENGTH, FLUX and IVAR columns that are not arrays")
                _within(f"has in row {row} a spectrum of", max(len(cell) for cell in cells), limits.max_pixels, "pixels")
                yield ObservedSpectrum(*_clean(*cells), "lamost", row if rows > 1 else None, dict(meta))

        return spectra()
    return None


def _sdss(hdus, limits: FileLimits) -> Iterator[ObservedSpectrum] | None:
    if len(hdus) < 2 or getattr(hdus[1], "columns", None) is None:
        return None
    if "loglam" not in {n.lower() for n in hdus[1].columns.names}:
        return None
    _within("has a table of", _declared_rows(hdus[1]), limits.max_pixels, "pixels")

    def spectra() -> Iterator[ObservedSpectrum]:
        table = hdus[1].data
        loglam, flux, ivar = (_column(table, name) for name in ("loglam", "flux", "ivar"))
        if flux is None or ivar is None:
            raise SpectrumFileError("has an SDSS 'loglam' column but no 'flux' or 'ivar'")
        # HDU 2 holds the pipeline's CLASS and Z among ~240 columns; parsing it would triple the
        # time to read a file (measured 0.08 of 0.125 s), so it is left unread.
        yield ObservedSpectrum(*_clean(10.0**loglam, flux, ivar), "sdss")

    return spectra()


def _desi(hdus, limits: FileLimits) -> Iterator[ObservedSpectrum] | None:
    names = {hdu.name.upper() for hdu in hdus}
    arms = [a for a in DESI_ARMS if {f"{a}_WAVELENGTH", f"{a}_FLUX", f"{a}_IVAR"} <= names]
    if not arms:
        return None
    flux_shapes = {}
    for arm in arms:
        flux_shape = _declared_shape(hdus[f"{arm}_FLUX"])
        flux_shape = (1, *flux_shape) if len(flux_shape) == 1 else flux_shape
        wave_shape = _declared_shape(hdus[f"{arm}_WAVELENGTH"])
        masks = [f"{arm}_IVAR"] + ([f"{arm}_MASK"] if f"{arm}_MASK" in names else [])
        if len(flux_shape) != 2 or wave_shape[-1:] != flux_shape[1:] or any(_declared_shape(hdus[m]) not in {flux_shape, flux_shape[1:]} for m in masks):
            raise SpectrumFileError(f"has DESI arm {arm} whose FLUX, IVAR and WAVELENGTH sizes disagree")
        flux_shapes[arm] = flux_shape
    if len({rows for rows, _ in flux_shapes.values()}) != 1:
        raise SpectrumFileError("has DESI arms with different numbers of spectra")
    nspec = flux_shapes[arms[0]][0]
    _within("holds", nspec, limits.max_spectra, "spectra")
    _within("has DESI arms of", sum(pixels for _, pixels in flux_shapes.values()), limits.max_pixels, "pixels in all")

    def spectra() -> Iterator[ObservedSpectrum]:
        # The arms share one wavelength grid where they overlap: combine equal wavelengths,
        # weighting each arm's pixel by its inverse variance. Rows are widened to float64 one at a time.
        waves = [np.asarray(hdus[f"{a}_WAVELENGTH"].data, dtype=np.float64).ravel() for a in arms]
        wavelength, index = np.unique(np.round(np.concatenate(waves), 3), return_inverse=True)
        fluxes = [np.atleast_2d(hdus[f"{a}_FLUX"].data) for a in arms]
        ivars = [np.atleast_2d(hdus[f"{a}_IVAR"].data) for a in arms]
        masks = [np.atleast_2d(hdus[f"{a}_MASK"].data) if f"{a}_MASK" in names else None for a in arms]
        target_ids = []
        if "FIBERMAP" in names and hdus["FIBERMAP"].columns is not None and "TARGETID" in hdus["FIBERMAP"].columns.names:
            _within("has a FIBERMAP of", _declared_rows(hdus["FIBERMAP"]), limits.max_spectra, "rows")
            target_ids = [int(t) for t in hdus["FIBERMAP"].data["TARGETID"]]
        for row in range(nspec):
            flux_row = np.concatenate([f[row] for f in fluxes]).astype(np.float64)
            ivar_row = np.concatenate([
                np.where(m[row] != 0, 0.0, i[row]) if m is not None else i[row] for i, m in zip(ivars, masks)
            ]).astype(np.float64)
            ok = np.isfinite(flux_row) & np.isfinite(ivar_row) & (ivar_row > 0)
            weights = np.where(ok, ivar_row, 0.0)
            weight_sum = np.bincount(index, weights, len(wavelength))
            flux_sum = np.bincount(index, weights * np.where(ok, flux_row, 0.0), len(wavelength))
            with np.errstate(invalid="ignore", divide="ignore"):
                flux = np.where(weight_sum > 0, flux_sum / weight_sum, 0.0)
            meta = {"targetid": target_ids[row]} if row < len(target_ids) else {}
            yield ObservedSpectrum(*_clean(wavelength, flux, weight_sum), "desi", row, meta)

    return spectra()


READERS = (_desi, _sdss, _lamost_table, _lamost_image)


def _check(spectrum: ObservedSpectrum) -> ObservedSpectrum:
    w = spectrum.wavelength
    if len(w) < 2 or not np.all(np.isfinite(w)) or w[0] <= 0 or not np.all(np.diff(w) > 0):
        raise SpectrumFileError("has a wavelength solution that is not finite, positive and increasing")
    return spectrum


def _as_file_error(step: Callable[[], T]) -> T:
    """``step()``, with any failure but the readers' own reported as a malformed file."""
    try:
        return step()
    except SpectrumFileError:
        raise
    except Exception:  # a header or table that claims a layout but does not hold it
        raise SpectrumFileError("looks like a spectrum file but its tables are malformed") from None


def iter_spectra(
    data: bytes, limits: FileLimits = FileLimits(), budget: ByteBudget | None = None,
    checkpoint: Callable[[], None] | None = None,
) -> Iterator[ObservedSpectrum]:
    """Each spectrum in a LAMOST, SDSS or DESI FITS file (gzip-compressed or not), given its bytes,
    read one at a time so the caller can reduce it before the next is read.

    Sizes are checked from the headers first (:class:`FileLimits`; ``budget`` spans the files of
    one request). ``checkpoint`` is called before each spectrum (a deadline raises there).
    """
    if not data:
        raise SpectrumFileError("is empty")
    hdus = open_fits(data, budget or ByteBudget(limits.max_bytes))
    # A damaged file's values overflow and make numpy warn; what matters is checked below.
    with hdus, np.errstate(all="ignore"):
        spectra = _as_file_error(lambda: next((s for reader in READERS if (s := reader(hdus, limits)) is not None), None))
        if spectra is None:
            raise SpectrumFileError("is FITS but not a layout read here (LAMOST image or table, SDSS spec-lite, DESI coadd)")
        count = 0
        while True:
            if checkpoint is not None:
                checkpoint()
            spectrum = _as_file_error(lambda: next(spectra, None))
            if spectrum is None:
                break
            count += 1
            yield _check(spectrum)
    if not count:
        raise SpectrumFileError("holds no spectra")


def read_spectra(data: bytes, limits: FileLimits = FileLimits()) -> list[ObservedSpectrum]:
    """Every spectrum of :func:`iter_spectra`, in a list."""
    return list(iter_spectra(data, limits))


def read_spectrum_file(path, limits: FileLimits = FileLimits()) -> list[ObservedSpectrum]:
    """:func:`read_spectra` of a file on disk."""
    with open(path, "rb") as f:
        return read_spectra(f.read(), limits)
