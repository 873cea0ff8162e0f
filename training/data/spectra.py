"""Simulated LAMOST low-resolution spectra built from real spectral templates.

No public labelled set of real galaxy and quasar spectra is available here, so
the training and test sets are generated. The recipe (also in the README):

1. **Source.** STAR: one real stellar template (SDSS ``spEigenStar``: O–M, L
   dwarfs, white dwarfs, carbon stars), radial velocity |v| ≲ 300 km/s.
   GALAXY: the mean SDSS galaxy eigenspectrum plus random multiples of the next
   three, redrawn smaller until the flux is positive, z ∈ [0, 0.8].
   QSO: the same over quasar eigenspectra (SDSS, or DESI Redrock's low-/high-z
   bases), z ∈ [0.1, 4], so the broad lines move through the window.
   UNKNOWN: what pipelines cannot classify — S/N below ~1.5, cataclysmic
   variables (``spEigenCVstar``), spectra with most pixels masked, and flat,
   random-walk or spiky garbage.
2. **Redshift** in log λ, then flux-conserving resampling onto the LAMOST grid
   (:mod:`training.preprocessing.spectra`).
3. **Instrument.** A smooth random throughput error (Legendre series), an
   extinction-like power-law tilt, a blue/red arm mismatch at the dichroic
   (~5900 Å), residual telluric A/B-band absorption.
4. **Noise and masks.** Gaussian with a Poisson-like term (σ² ∝ a + b·flux)
   at a log-uniform S/N in [2, 80], more noise at the blue edge, extra noise
   and residual spikes at bright sky lines, a few dead pixels and often a
   masked stretch near the dichroic and at the red end (set to 0, as LAMOST
   masks them), an arbitrary overall flux scale.

The test split uses different templates from training: every fifth stellar
template, the newer SDSS galaxy and quasar eigenbases (``spEigenGal-56436``,
``spEigenQSO-55732``) — the training split uses ``spEigenGal-53724``,
``spEigenQSO-53724`` and the DESI bases — and its own random draws. So the test
measures generalisation to unseen templates, not memory of the training draws.
Everything is deterministic given the seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.preprocessing.spectra import LAMOST, LogGrid, rebin

CLASSES = ("STAR", "GALAXY", "QSO", "UNKNOWN")
SPLITS = ("train", "dev", "test")
C_KM_S = 299_792.458

# Bright night-sky emission lines (Å) whose subtraction leaves residuals.
SKY_LINES = np.array(
    [5577.3, 5890.0, 5895.9, 6300.3, 6363.8, 6863.9, 7276.4, 7340.9, 7750.6, 7794.1, 7821.5, 7913.7,
     7993.3, 8344.6, 8399.2, 8430.2, 8465.4, 8504.8, 8827.1, 8885.8, 8919.6, 8943.4, 8958.1, 8988.4]
)
TELLURIC_BANDS = ((6867.0, 6884.0), (7594.0, 7621.0))
DICHROIC = 5900.0


@dataclass(frozen=True)
class TemplateSet:
    """Rest-frame spectra on a log-λ grid: ``flux[k]`` is template (or eigen-component) ``k``."""

    name: str
    grid: LogGrid
    flux: np.ndarray

    @property
    def edges(self) -> np.ndarray:
        return self.grid.edges


def _read_sdss(path: Path) -> TemplateSet:
    from astropy.io import fits

    with fits.open(path) as hdus:
        header, data = hdus[0].header, np.asarray(hdus[0].data, dtype=np.float64)
    return TemplateSet(path.stem, LogGrid(header["COEFF0"], header["COEFF1"], data.shape[1]), data)


def _read_redrock(path: Path) -> TemplateSet:
    from astropy.io import fits

    with fits.open(path) as hdus:
        header = hdus["BASIS_VECTORS"].header
        data = np.asarray(hdus["BASIS_VECTORS"].data, dtype=np.float64)
    return TemplateSet(path.stem, LogGrid(header["CRVAL1"], header["CDELT1"], data.shape[1]), data)


@dataclass(frozen=True)
class Templates:
    """The template sets of one split."""

    stars: list[TemplateSet]  # one row per star; each set keeps its own grid
    galaxies: list[TemplateSet]  # eigenbases: row 0 is the mean
    quasars: list[tuple[TemplateSet, float, float]]  # eigenbasis with the redshift range it covers
    cataclysmic: TemplateSet

    @classmethod
    def load(cls, root: Path, split: str) -> "Templates":
        sdss, desi = Path(root) / "sdss_idlspec2d", Path(root) / "desi_redrock"
        stars = [_read_sdss(sdss / "spEigenStar-53724.fits"), _read_sdss(sdss / "spEigenStar-55734.fits")]
        held_out = split == "test"
        stars = [
            TemplateSet(s.name, s.grid, s.flux[[(i % 5 == 0) == held_out for i in range(len(s.flux))]]) for s in stars
        ]
        if held_out:
            galaxies = [_read_sdss(sdss / "spEigenGal-56436.fits")]
            quasars = [(_read_sdss(sdss / "spEigenQSO-55732.fits"), 0.1, 4.0)]
        else:
            galaxies = [_read_sdss(sdss / "spEigenGal-53724.fits")]
            quasars = [
                (_read_sdss(sdss / "spEigenQSO-53724.fits"), 0.1, 4.0),
                (_read_redrock(desi / "rrtemplate-QSO-LOZ-v1.1.fits"), 0.1, 1.5),
                (_read_redrock(desi / "rrtemplate-QSO-HIZ-v1.1.fits"), 1.5, 4.0),
            ]
        return cls(stars, galaxies, quasars, _read_sdss(sdss / "spEigenCVstar-55734.fits"))


def redshift_onto_grid(
    template: TemplateSet, rest_flux: np.ndarray, z: np.ndarray, grid: LogGrid = LAMOST
) -> np.ndarray:
    """Rest-frame spectra ``[n, m]`` at redshifts ``z`` ``[n]`` → observed flux ``[n, grid.npix]``.

    Redshifting stretches λ by (1 + z), a shift of log10(1 + z) in log λ. Parts
    of the grid the template does not reach take the nearest covered value's
    neighbourhood median, so missing template coverage is not a class cue.
    """
    out = np.empty((len(z), grid.npix))
    for i, (flux, zi) in enumerate(zip(rest_flux, z)):
        mean, coverage = rebin(template.edges * (1 + zi), flux, grid.edges)
        covered = np.flatnonzero(coverage > 0.99)
        if len(covered) < grid.npix:
            first, last = covered[0], covered[-1]
            mean[:first] = np.median(mean[first : first + 20])
            mean[last + 1 :] = np.median(mean[last - 19 : last + 1])
        out[i] = mean
    return out


def _positive_combinations(basis: np.ndarray, n: int, rng: np.random.Generator, scales=(0.35, 0.2, 0.1)) -> np.ndarray:
    """``n`` spectra ``basis[0] + Σ c_k basis[k]`` with c drawn so each term's rms is ~scale × the mean's.

    Draws that go negative (below -2 % of the median) are shrunk by half, up to
    six times, then fall back to the mean spectrum alone.
    """
    mean = basis[0]
    rms = np.sqrt(np.mean(basis[1:] ** 2, axis=1))
    scales = np.asarray(scales[: len(basis) - 1])
    coefficients = rng.normal(size=(n, len(basis) - 1)) * scales * np.sqrt(np.mean(mean**2)) / rms
    floor = -0.02 * np.median(np.abs(mean))
    for _ in range(6):
        spectra = mean + coefficients @ basis[1:]
        bad = spectra.min(axis=1) < floor
        if not bad.any():
            return spectra
        coefficients[bad] *= 0.5
    coefficients[bad] = 0.0
    return mean + coefficients @ basis[1:]


def _stars(templates: Templates, n: int, rng: np.random.Generator) -> np.ndarray:
    which = rng.integers(0, len(templates.stars), n)
    out = np.empty((n, LAMOST.npix))
    for k, tset in enumerate(templates.stars):
        rows = np.flatnonzero(which == k)
        picks = rng.integers(0, len(tset.flux), len(rows))
        velocity = rng.normal(0, 100, len(rows)).clip(-300, 300)
        out[rows] = redshift_onto_grid(tset, tset.flux[picks], velocity / C_KM_S)
    return out


def _from_eigenbases(bases: list[tuple[TemplateSet, float, float]], n: int, rng: np.random.Generator):
    which = rng.integers(0, len(bases), n)
    out = np.empty((n, LAMOST.npix))
    for k, (tset, z_min, z_max) in enumerate(bases):
        rows = np.flatnonzero(which == k)
        z = rng.uniform(z_min, z_max, len(rows))
        out[rows] = redshift_onto_grid(tset, _positive_combinations(tset.flux, len(rows), rng), z)
    return out


def _galaxies(templates: Templates, n: int, rng: np.random.Generator) -> np.ndarray:
    return _from_eigenbases([(g, 0.0, 0.8) for g in templates.galaxies], n, rng)


def _quasars(templates: Templates, n: int, rng: np.random.Generator) -> np.ndarray:
    return _from_eigenbases(templates.quasars, n, rng)


def _instrument(flux: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Smooth throughput error, extinction-like tilt, arm mismatch and telluric residuals."""
    n = len(flux)
    wavelength = LAMOST.wavelength
    x = np.linspace(-1, 1, LAMOST.npix)
    legendre = np.stack([np.polynomial.legendre.Legendre.basis(k)(x) for k in range(1, 5)])
    throughput = np.exp(rng.normal(0, [0.12, 0.06, 0.04, 0.03], size=(n, 4)) @ legendre)
    tilt = (wavelength / 6000.0) ** rng.normal(0, 0.6, size=(n, 1))
    red_arm = 1 / (1 + np.exp(-(wavelength - DICHROIC) / 15.0))
    arm = 1 + rng.normal(0, 0.06, size=(n, 1)) * red_arm
    telluric = np.ones_like(flux)
    for low, high in TELLURIC_BANDS:
        band = (wavelength >= low) & (wavelength <= high)
        telluric[:, band] -= rng.uniform(0, 0.3, size=(n, 1))
    return flux * throughput * tilt * arm * telluric


def _observe(flux: np.ndarray, rng: np.random.Generator, snr: np.ndarray) -> np.ndarray:
    """Noise at the given median S/N, sky residuals, dead pixels and an arbitrary flux scale."""
    n = len(flux)
    wavelength = LAMOST.wavelength
    level = np.median(np.abs(flux), axis=1, keepdims=True) + 1e-12
    flux = flux / level
    sky = np.zeros_like(wavelength)
    for line in SKY_LINES:
        sky += np.exp(-0.5 * ((wavelength - line) / 2.5) ** 2)
    sky_strength = rng.uniform(0.5, 3.0, size=(n, 1))
    blue_edge = 1 + 3 * np.exp(-(wavelength - wavelength[0]) / 150.0)  # throughput falls off below ~4000 Å
    variance = (0.3 + 0.7 * np.clip(flux, 0, None) + sky_strength * sky) * blue_edge**2 / snr[:, None] ** 2
    observed = flux + rng.normal(size=flux.shape) * np.sqrt(variance)
    observed += rng.normal(0, 0.3, size=(n, 1)) * sky_strength * sky / snr[:, None]  # subtraction residuals
    dichroic = int(np.searchsorted(wavelength, DICHROIC))
    for i in range(n):
        for start in rng.integers(0, LAMOST.npix, rng.poisson(3)):  # dead pixels
            observed[i, start : start + rng.integers(1, 4)] = 0.0
        if rng.random() < 0.3:  # the pipeline often masks a stretch where the two arms join
            start = dichroic - rng.integers(50, 400)
            observed[i, start : start + rng.integers(20, 350)] = 0.0
        observed[i, LAMOST.npix - rng.integers(0, 40) :] = 0.0  # unreliable red end
    return (observed * 10 ** rng.uniform(0, 3.5, size=(n, 1))).astype(np.float32)


def _any_source(templates: Templates, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` noiseless spectra, each a star, galaxy or quasar at random."""
    source = rng.integers(0, 3, n)
    flux = np.empty((n, LAMOST.npix))
    for k, make in enumerate((_stars, _galaxies, _quasars)):
        flux[source == k] = make(templates, int(np.sum(source == k)), rng)
    return flux


def _unknown(templates: Templates, n: int, rng: np.random.Generator) -> np.ndarray:
    """Low S/N sources, cataclysmic variables, heavily masked spectra and garbage, in equal parts."""
    kind = rng.integers(0, 4, n)
    out = np.empty((n, LAMOST.npix), dtype=np.float32)

    rows = np.flatnonzero(kind == 0)  # a real source drowned in noise
    flux = _any_source(templates, len(rows), rng)
    out[rows] = _observe(_instrument(flux, rng), rng, rng.uniform(0.2, 1.5, len(rows)))

    rows = np.flatnonzero(kind == 1)  # cataclysmic variables
    cv = templates.cataclysmic
    flux = redshift_onto_grid(cv, _positive_combinations(cv.flux, len(rows), rng), rng.normal(0, 3e-4, len(rows)))
    out[rows] = _observe(_instrument(flux, rng), rng, _snr(rng, len(rows)))

    rows = np.flatnonzero(kind == 2)  # most of the spectrum masked
    flux = _any_source(templates, len(rows), rng)
    masked = _observe(_instrument(flux, rng), rng, _snr(rng, len(rows)))
    for i in range(len(rows)):
        keep = int(LAMOST.npix * rng.uniform(0.05, 0.35))
        start = rng.integers(0, LAMOST.npix - keep)
        masked[i, :start] = 0.0
        masked[i, start + keep :] = 0.0
    out[rows] = masked

    rows = np.flatnonzero(kind == 3)  # flat, random-walk or spiky garbage
    style = rng.integers(0, 3, len(rows))
    garbage = np.ones((len(rows), LAMOST.npix))
    walk = np.cumsum(rng.normal(size=(len(rows), LAMOST.npix)), axis=1)
    garbage[style == 1] = 5 + walk[style == 1] / np.sqrt(LAMOST.npix)
    spikes = rng.random((len(rows), LAMOST.npix)) < 0.02
    garbage[style == 2] = 1 + (spikes * rng.exponential(20, spikes.shape))[style == 2]
    out[rows] = _observe(garbage, rng, rng.uniform(2, 50, len(rows)))
    return out


def _snr(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.exp(rng.uniform(np.log(2.0), np.log(80.0), n))


def simulate(templates: Templates, n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``4 × n_per_class`` spectra ``[N, 3904]`` float32 on the LAMOST grid (0 = masked) and labels ``[N]``."""
    rng = np.random.default_rng(seed)
    parts = [
        _observe(_instrument(_stars(templates, n_per_class, rng), rng), rng, _snr(rng, n_per_class)),
        _observe(_instrument(_galaxies(templates, n_per_class, rng), rng), rng, _snr(rng, n_per_class)),
        _observe(_instrument(_quasars(templates, n_per_class, rng), rng), rng, _snr(rng, n_per_class)),
        _unknown(templates, n_per_class, rng),
    ]
    labels = np.repeat(np.arange(len(CLASSES)), n_per_class)
    order = rng.permutation(len(labels))
    return np.concatenate(parts)[order], labels[order]


def read_lamost_fits(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Flux and inverse variance of a LAMOST low-resolution spectrum; flux is 0 where ivar is 0 or masked."""
    from astropy.io import fits

    with fits.open(path) as hdus:
        data = np.asarray(hdus[0].data, dtype=np.float64)
    flux, ivar = data[0], data[1]
    good = (ivar > 0) & np.isfinite(flux)
    return np.where(good, flux, 0.0).astype(np.float32), np.where(good, ivar, 0.0).astype(np.float32)
