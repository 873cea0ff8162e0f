"""The spectrum grid of the model and flux-conserving resampling onto it.

Shared by the simulator (redshifted templates → grid) and the service (a
caller's spectrum on any grid → the model's grid), so both resample alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LogGrid:
    """Pixels uniform in log10(λ): centre ``i`` is at ``10**(loglam0 + dloglam * i)`` Å."""

    loglam0: float
    dloglam: float
    npix: int

    @property
    def loglam(self) -> np.ndarray:
        return self.loglam0 + self.dloglam * np.arange(self.npix)

    @property
    def wavelength(self) -> np.ndarray:
        return 10.0**self.loglam

    @property
    def edges(self) -> np.ndarray:
        """Pixel boundaries in Å (``npix + 1``), half a step either side of each centre in log λ."""
        return 10.0 ** (self.loglam0 + self.dloglam * (np.arange(self.npix + 1) - 0.5))


# The LAMOST low-resolution grid, ~3700–9100 Å.
LAMOST = LogGrid(loglam0=3.5682, dloglam=1e-4, npix=3904)


def edges_from_centres(wavelength: np.ndarray) -> np.ndarray:
    """Pixel boundaries for increasing pixel centres: midpoints, extrapolated half a pixel at the ends."""
    mid = 0.5 * (wavelength[1:] + wavelength[:-1])
    return np.concatenate([[2 * wavelength[0] - mid[0]], mid, [2 * wavelength[-1] - mid[-1]]])


def rebin(
    src_edges: np.ndarray, flux: np.ndarray, dst_edges: np.ndarray, good: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Mean flux density of a piecewise-constant source over each destination pixel.

    Integrates the source exactly (a cumulative sum interpolated at the
    destination edges), so the integral of flux over any span covered by both
    grids is conserved, and rebinning onto the source's own grid is the identity.
    ``good`` marks usable source pixels; bad ones do not contribute.

    Returns ``(flux, coverage)``: coverage is the fraction of each destination
    pixel covered by good source pixels (0 where the source does not reach).
    """
    flux = np.asarray(flux, dtype=np.float64)
    good = np.ones_like(flux, dtype=bool) if good is None else np.asarray(good, dtype=bool)
    width = np.diff(src_edges)
    cumulative_flux = np.concatenate([[0.0], np.cumsum(np.where(good, flux, 0.0) * width)])
    cumulative_good = np.concatenate([[0.0], np.cumsum(good * width)])
    dst_width = np.diff(dst_edges)
    # np.interp clamps outside the source, so uncovered parts integrate to zero.
    integral = np.diff(np.interp(dst_edges, src_edges, cumulative_flux))
    covered = np.diff(np.interp(dst_edges, src_edges, cumulative_good))
    coverage = np.clip(covered / dst_width, 0.0, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(covered > 0, integral / covered, 0.0)
    return mean, coverage


# Above this share of masked pixels a spectrum is too little to classify: the simulator's UNKNOWN
# "mostly masked" spectra start here, and the service refuses more by default.
UNCLASSIFIABLE_MASKED_SHARE = 0.65


def masked_fraction(flux: np.ndarray) -> float:
    """Fraction of pixels that carry no flux (0, the masked value, or not finite)."""
    flux = np.asarray(flux, dtype=np.float64)
    return float(np.mean(~np.isfinite(flux) | (flux == 0)))


def _as_float32(flux: np.ndarray) -> np.ndarray:
    """``flux`` as the model's float32, with pixels that are not finite there (NaN, ±inf, or
    beyond float32's range) set to 0, i.e. masked."""
    with np.errstate(over="ignore", invalid="ignore"):
        flux = np.asarray(flux).astype(np.float32)
    return np.where(np.isfinite(flux), flux, np.float32(0))


def on_model_grid(flux: np.ndarray) -> np.ndarray:
    """Flux already on :data:`LAMOST`: non-finite pixels become 0 (masked)."""
    return _as_float32(flux)


def resample_to_model_grid(
    wavelength: np.ndarray, flux: np.ndarray, ivar: np.ndarray | None = None, grid: LogGrid = LAMOST
) -> np.ndarray:
    """A spectrum on any increasing wavelength grid (Å) → flux on the model grid, 0 where not covered.

    Pixels with ``ivar == 0`` or non-finite flux do not contribute; a model pixel
    less than half covered by usable input pixels is masked.
    """
    wavelength = np.asarray(wavelength, dtype=np.float64)
    flux = np.asarray(flux, dtype=np.float64)
    good = np.isfinite(flux)
    if ivar is not None:
        ivar = np.asarray(ivar, dtype=np.float64)
        good &= np.isfinite(ivar) & (ivar > 0)
    mean, coverage = rebin(edges_from_centres(wavelength), np.where(good, flux, 0.0), grid.edges, good)
    return _as_float32(np.where(coverage >= 0.5, mean, 0.0))
