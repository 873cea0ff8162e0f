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

Gzip-compressed files are read as well. Anything else raises
:class:`SpectrumFileError` with a message meant for the caller.
"""

from __future__ import annotations

import gzip
import io
import zlib
from dataclasses import dataclass, field

import numpy as np

# What a FITS file is called on disk (the readers go by content; folder scans go by name). The
# Python client keeps its own copy, being installable without the service; a test keeps them equal.
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")
GZIP_MAGIC = b"\x1f\x8b"
FITS_BLOCK = 2880
FITS_MAGIC = b"SIMPLE  ="
DESI_ARMS = ("B", "R", "Z")


class SpectrumFileError(ValueError):
    """A file that is not a spectrum this module can read; the message says why, for the caller."""


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


def _decompress(data: bytes, max_bytes: int) -> bytes:
    """Gunzip ``data`` (possibly several members) without ever holding more than ``max_bytes``."""
    out = bytearray()
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            while chunk := stream.read(1 << 20):
                out += chunk
                if len(out) > max_bytes:
                    raise SpectrumFileError(f"decompresses to more than {max_bytes:,} bytes")
    except (OSError, EOFError, zlib.error):
        raise SpectrumFileError("is gzip-compressed but the compressed data are corrupt or truncated") from None
    return bytes(out)


def _open_fits(data: bytes, max_bytes: int):
    from astropy.io import fits

    if data[:2] == GZIP_MAGIC:
        data = _decompress(data, max_bytes)
    elif len(data) > max_bytes:
        raise SpectrumFileError(f"is larger than {max_bytes:,} bytes")
    if not data.startswith(FITS_MAGIC):
        raise SpectrumFileError("is not a FITS file (it does not start with a SIMPLE card)")
    if len(data) % FITS_BLOCK:  # the standard pads every file to whole blocks; a cut file is not
        raise SpectrumFileError(f"is truncated or padded wrongly: {len(data):,} bytes is not a whole number of 2,880-byte FITS blocks")
    unreadable = SpectrumFileError("is not a readable FITS file (corrupt or truncated header or data)")
    try:
        # Every header is read now, data units only when a reader asks for them.
        hdus = fits.open(io.BytesIO(data), memmap=False, lazy_load_hdus=False, ignore_missing_simple=False)
        complete = _complete(hdus, data)
    except Exception:  # astropy raises OSError, ValueError, TypeError, … for broken files
        raise unreadable from None
    if not complete:
        hdus.close()
        raise unreadable
    return hdus


def _complete(hdus, data: bytes) -> bool:
    """Whether every data unit lies inside the file and nothing but padding follows the last one.

    astropy reads on past a truncated data unit, and drops an extension whose header it cannot
    parse, with a warning only; warnings are no signal in a threaded server (catching them is
    process-wide), so the layout is checked instead.
    """
    end = 0
    for hdu in hdus:
        if not hasattr(hdu, "fileinfo"):  # astropy's placeholder for an HDU it could not parse
            return False
        start = hdu.fileinfo()["datLoc"]
        if start + hdu.size > len(data):
            return False
        end = start + -(-hdu.size // FITS_BLOCK) * FITS_BLOCK
    return not data[end:].strip(b"\0 ")


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
    meta = {}
    for key in ("CLASS", "SUBCLASS", "Z", "Z_ERR", "OBSID", "DESIG", "OBJNAME"):
        if key in header and not isinstance(header[key], bool):
            meta[key.lower()] = header[key]
    return meta


def _lamost_image(hdus) -> list[ObservedSpectrum] | None:
    header, data = hdus[0].header, hdus[0].data
    if data is None or data.ndim != 2 or data.shape[0] < 2:
        return None
    npix = data.shape[1]
    if "COEFF0" in header and "COEFF1" in header:
        loglam0, dloglam = header["COEFF0"], header["COEFF1"]
    elif "CRVAL1" in header and "CD1_1" in header and header.get("DC-FLAG") == 1:
        loglam0, dloglam = header["CRVAL1"], header["CD1_1"]
    else:
        raise SpectrumFileError(
            "holds a LAMOST-style image but no wavelength solution (COEFF0/COEFF1, or CRVAL1/CD1_1 with DC-FLAG = 1)"
        )
    loglam = float(loglam0) + float(dloglam) * np.arange(npix)
    wavelength, flux, ivar = _clean(10.0**loglam, data[0], data[1])
    return [ObservedSpectrum(wavelength, flux, ivar, "lamost", meta=_header_meta(header))]


def _lamost_table(hdus) -> list[ObservedSpectrum] | None:
    for hdu in hdus[1:]:
        if getattr(hdu, "columns", None) is None or hdu.data is None:
            continue
        names = {n.upper() for n in hdu.columns.names}
        if {"WAVELENGTH", "FLUX", "IVAR"} <= names and len(hdu.data) >= 1 and np.ndim(hdu.data["FLUX"][0]) == 1:
            out = []
            for row in range(len(hdu.data)):
                wavelength, flux, ivar = (np.asarray(hdu.data[c][row], dtype=np.float64) for c in ("WAVELENGTH", "FLUX", "IVAR"))
                meta = _header_meta(hdus[0].header)
                out.append(ObservedSpectrum(*_clean(wavelength, flux, ivar), "lamost", row if len(hdu.data) > 1 else None, meta))
            return out
    return None


def _sdss(hdus) -> list[ObservedSpectrum] | None:
    if len(hdus) < 2 or getattr(hdus[1], "columns", None) is None or hdus[1].data is None:
        return None
    table = hdus[1].data
    loglam = _column(table, "loglam")
    if loglam is None:
        return None
    flux, ivar = _column(table, "flux"), _column(table, "ivar")
    if flux is None or ivar is None:
        raise SpectrumFileError("has an SDSS 'loglam' column but no 'flux' or 'ivar'")
    # HDU 2 holds the pipeline's CLASS and Z among ~240 columns; parsing it would triple the
    # time to read a file (measured 0.08 of 0.125 s), so it is left unread.
    return [ObservedSpectrum(*_clean(10.0**loglam, flux, ivar), "sdss")]


def _desi(hdus) -> list[ObservedSpectrum] | None:
    names = {hdu.name.upper() for hdu in hdus}
    arms = [a for a in DESI_ARMS if {f"{a}_WAVELENGTH", f"{a}_FLUX", f"{a}_IVAR"} <= names]
    if not arms:
        return None
    waves, fluxes, ivars = [], [], []
    for arm in arms:
        wave = np.asarray(hdus[f"{arm}_WAVELENGTH"].data, dtype=np.float64).ravel()
        flux = np.atleast_2d(np.asarray(hdus[f"{arm}_FLUX"].data, dtype=np.float64))
        ivar = np.atleast_2d(np.asarray(hdus[f"{arm}_IVAR"].data, dtype=np.float64))
        if flux.shape != ivar.shape or flux.shape[1] != len(wave):
            raise SpectrumFileError(f"has DESI arm {arm} whose FLUX, IVAR and WAVELENGTH sizes disagree")
        if f"{arm}_MASK" in names:
            ivar = np.where(np.asarray(hdus[f"{arm}_MASK"].data) != 0, 0.0, ivar)
        waves.append(wave), fluxes.append(flux), ivars.append(ivar)
    nspec = {f.shape[0] for f in fluxes}
    if len(nspec) != 1:
        raise SpectrumFileError("has DESI arms with different numbers of spectra")
    # The arms share one wavelength grid where they overlap: combine equal wavelengths,
    # weighting each arm's pixel by its inverse variance.
    wavelength, index = np.unique(np.round(np.concatenate(waves), 3), return_inverse=True)
    target_ids = []
    if "FIBERMAP" in names and hdus["FIBERMAP"].columns is not None and "TARGETID" in hdus["FIBERMAP"].columns.names:
        target_ids = [int(t) for t in hdus["FIBERMAP"].data["TARGETID"]]
    out = []
    for row in range(nspec.pop()):
        flux_row = np.concatenate([f[row] for f in fluxes])
        ivar_row = np.concatenate([i[row] for i in ivars])
        ok = np.isfinite(flux_row) & np.isfinite(ivar_row) & (ivar_row > 0)
        weights = np.where(ok, ivar_row, 0.0)
        weight_sum = np.bincount(index, weights, len(wavelength))
        flux_sum = np.bincount(index, weights * np.where(ok, flux_row, 0.0), len(wavelength))
        with np.errstate(invalid="ignore", divide="ignore"):
            flux = np.where(weight_sum > 0, flux_sum / weight_sum, 0.0)
        meta = {"targetid": target_ids[row]} if row < len(target_ids) else {}
        out.append(ObservedSpectrum(*_clean(wavelength, flux, weight_sum), "desi", row, meta))
    return out


def _check(spectrum: ObservedSpectrum) -> ObservedSpectrum:
    w = spectrum.wavelength
    if len(w) < 2 or not np.all(np.isfinite(w)) or w[0] <= 0 or not np.all(np.diff(w) > 0):
        raise SpectrumFileError("has a wavelength solution that is not finite, positive and increasing")
    return spectrum


def read_spectra(data: bytes, *, max_bytes: int = 64 << 20, max_rows: int = 500) -> list[ObservedSpectrum]:
    """Every spectrum in a LAMOST, SDSS or DESI FITS file (gzip-compressed or not), given its bytes.

    ``max_bytes`` bounds the decompressed size, ``max_rows`` the spectra in one file.
    """
    if not data:
        raise SpectrumFileError("is empty")
    hdus = _open_fits(data, max_bytes)
    # A damaged file's values overflow and make numpy warn; what matters is checked below.
    with hdus, np.errstate(all="ignore"):
        for reader in (_desi, _sdss, _lamost_table, _lamost_image):
            try:
                spectra = reader(hdus)
            except SpectrumFileError:
                raise
            except Exception:  # a header or table that claims a layout but does not hold it
                raise SpectrumFileError("looks like a spectrum file but its tables are malformed") from None
            if spectra is not None:
                break
        else:
            raise SpectrumFileError(
                "is FITS but not a layout read here (LAMOST image or table, SDSS spec-lite, DESI coadd)"
            )
    if not spectra:
        raise SpectrumFileError("holds no spectra")
    if len(spectra) > max_rows:
        raise SpectrumFileError(f"holds {len(spectra)} spectra; at most {max_rows} are read from one file")
    return [_check(s) for s in spectra]


def read_spectrum_file(path, **limits) -> list[ObservedSpectrum]:
    """:func:`read_spectra` of a file on disk."""
    with open(path, "rb") as f:
        return read_spectra(f.read(), **limits)
