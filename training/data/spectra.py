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
   (:mod:`app.tasks.spectra.grid`).
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

from app.tasks.spectra.grid import LAMOST, UNCLASSIFIABLE_MASKED_SHARE, LogGrid, rebin
from app.tasks.spectra.spec import CLASSES

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
    """Rest-frame spectra on a log-λ grid: ``flux[k]`` is template (or eigen-component) ``k``,
    ``names[k]`` its name where the file gives one (stellar types)."""

    name: str
    grid: LogGrid
    flux: np.ndarray
    names: tuple[str, ...] = ()

    @property
    def edges(self) -> np.ndarray:
        return self.grid.edges


def read_templates(path: Path, components: int | None = None) -> TemplateSet:
    """An SDSS ``spEigen*`` image (``COEFF0``/``COEFF1``, names in ``NAMEn``) or a Redrock
    ``BASIS_VECTORS`` extension (``CRVAL1``/``CDELT1``); the first ``components`` rows if given."""
    from astropy.io import fits

    with fits.open(path) as hdus:
        hdu = hdus["BASIS_VECTORS"] if "BASIS_VECTORS" in hdus else hdus[0]
        header, data = hdu.header, np.asarray(hdu.data, dtype=np.float64)[:components]
    loglam0, step = (header["COEFF0"], header["COEFF1"]) if "COEFF0" in header else (header["CRVAL1"], header["CDELT1"])
    names = tuple(str(header.get(f"NAME{i}", "")).strip() for i in range(len(data)))
    return TemplateSet(Path(path).stem, LogGrid(float(loglam0), float(step), data.shape[1]), data, names)


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
        stars = [read_templates(sdss / "spEigenStar-53724.fits"), read_templates(sdss / "spEigenStar-55734.fits")]
        held_out = split == "test"
        stars = [
            TemplateSet(s.name, s.grid, s.flux[[(i % 5 == 0) == held_out for i in range(len(s.flux))]]) for s in stars
        ]
        if held_out:
            galaxies = [read_templates(sdss / "spEigenGal-56436.fits")]
            quasars = [(read_templates(sdss / "spEigenQSO-55732.fits"), 0.1, 4.0)]
        else:
            galaxies = [read_templates(sdss / "spEigenGal-53724.fits")]
            quasars = [
                (read_templates(sdss / "spEigenQSO-53724.fits"), 0.1, 4.0),
                (read_templates(desi / "rrtemplate-QSO-LOZ-v1.1.fits"), 0.1, 1.5),
                (read_templates(desi / "rrtemplate-QSO-HIZ-v1.1.fits"), 1.5, 4.0),
            ]
        return cls(stars, galaxies, quasars, read_templates(sdss / "spEigenCVstar-55734.fits"))


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
    """Stellar templates at radial velocities |v| ≲ 300 km/s; one in twenty-five a cataclysmic
    variable (the SDSS pipeline calls them STAR, subclass CV)."""
    which = rng.integers(0, len(templates.stars), n)
    out = np.empty((n, LAMOST.npix))
    for k, tset in enumerate(templates.stars):
        rows = np.flatnonzero(which == k)
        picks = rng.integers(0, len(tset.flux), len(rows))
        velocity = rng.normal(0, 100, len(rows)).clip(-300, 300)
        out[rows] = redshift_onto_grid(tset, tset.flux[picks], velocity / C_KM_S)
    rows = np.flatnonzero(rng.random(n) < 0.04)
    cv = templates.cataclysmic
    out[rows] = redshift_onto_grid(cv, _positive_combinations(cv.flux, len(rows), rng), rng.normal(0, 3e-4, len(rows)))
    return out


def eigenbasis_spectra(
    bases: list[tuple[TemplateSet, float, float]], n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noiseless spectra on the model grid from eigenbases (each with the redshift range it
    covers, one chosen per spectrum), and their redshifts."""
    which = rng.integers(0, len(bases), n)
    out, z = np.empty((n, LAMOST.npix)), np.empty(n)
    for k, (tset, z_min, z_max) in enumerate(bases):
        rows = np.flatnonzero(which == k)
        z[rows] = rng.uniform(z_min, z_max, len(rows))
        out[rows] = redshift_onto_grid(tset, _positive_combinations(tset.flux, len(rows), rng), z[rows])
    return out, z


def _emission_lines(wavelength: np.ndarray, z: np.ndarray, continuum: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Narrow emission lines of star-forming galaxies and type-2 AGN on an observed grid ``[n, m]``.

    Hα's rest equivalent width is log-uniform in 3–300 Å; the other lines follow
    from ratios drawn over the range of the BPT diagram (star-forming to Seyfert 2)
    and a Balmer decrement of 2.86–6 (dust). Widths: σ 50–250 km/s.
    """
    n = len(z)
    ew_halpha = np.exp(rng.uniform(np.log(3.0), np.log(300.0), n))
    hbeta = 1 / rng.uniform(2.86, 6.0, n)
    oiii = hbeta * np.exp(rng.uniform(np.log(0.1), np.log(12.0), n))
    nii = np.exp(rng.uniform(np.log(0.05), np.log(1.5), n))
    oii = hbeta * np.exp(rng.uniform(np.log(0.5), np.log(6.0), n))
    sii = np.exp(rng.uniform(np.log(0.1), np.log(0.6), n))
    lines = [  # rest λ (vacuum Å), strength relative to Hα
        (6564.6, np.ones(n)), (4862.7, hbeta), (4341.7, 0.47 * hbeta), (5008.2, oiii), (4960.3, oiii / 3),
        (6585.3, nii), (6549.9, nii / 3), (3728.5, oii), (6718.3, 0.55 * sii), (6732.7, 0.45 * sii),
    ]
    sigma_v = rng.uniform(50, 250, (n, 1)) + 70.0  # plus the instrument's ~70 km/s
    out = np.zeros((n, len(wavelength)))
    # Hα's flux = EW × the continuum under it; galaxies beyond z ~0.4 lose Hα off the red end,
    # so the level is taken from the continuum's median instead.
    level = np.median(continuum, axis=1) * ew_halpha
    for rest, strength in lines:
        centre = rest * (1 + z[:, None])
        sigma = centre * sigma_v / C_KM_S
        out += (level * strength)[:, None] * np.exp(-0.5 * ((wavelength - centre) / sigma) ** 2) / (np.sqrt(2 * np.pi) * sigma)
    return out


def _galaxies(templates: Templates, n: int, rng: np.random.Generator) -> np.ndarray:
    """Eigenspectrum galaxies at z ∈ [0, 0.8]; three in five with strong narrow emission lines
    (star-forming, starburst, Seyfert 2: SDSS calls all of them GALAXY), mostly at lower z, and
    a third of those emission-line galaxies (ELGs) at z 0.6–1.4, as eBOSS and DESI observe them:
    little but [O II] on the model grid ([O II] leaves it at z 1.44).

    Emission-line galaxies get a young population's blue continuum, F_λ ∝ λ^β with β in
    −2.5…−1 (starbursts' UV slopes), for a random share of their light (0–90 %; ELGs 50–100 %):
    the eigenspectra's mean is an old, red population, and real star-forming galaxies are blue."""
    which = rng.integers(0, len(templates.galaxies), n)
    emitting = rng.random(n) < 0.6
    z = np.where(emitting, rng.uniform(0, 0.5, n) ** 1.3 / 0.5**0.3, rng.uniform(0, 0.8, n))
    distant = emitting & (rng.random(n) < 1 / 3)
    z[distant] = rng.uniform(0.6, 1.4, int(distant.sum()))
    young = np.where(distant, rng.uniform(0.5, 1.0, n), np.where(emitting, rng.uniform(0, 0.9, n), 0.0))[:, None]
    slope = rng.uniform(-2.5, -1.0, (n, 1))
    out = np.empty((n, LAMOST.npix))
    for k, tset in enumerate(templates.galaxies):
        rows = np.flatnonzero(which == k)
        old = _positive_combinations(tset.flux, len(rows), rng, (0.5, 0.3, 0.15))
        blue = (tset.grid.wavelength / 5000.0) ** slope[rows]
        blue *= old.mean(axis=1, keepdims=True) / blue.mean(axis=1, keepdims=True)
        out[rows] = redshift_onto_grid(tset, (1 - young[rows]) * old + young[rows] * blue, z[rows])
    rows = np.flatnonzero(emitting)
    out[rows] += _emission_lines(LAMOST.wavelength, z[rows], out[rows], rng)
    return out


def _smc_extinction(rest_wavelength: np.ndarray, ebv: np.ndarray) -> np.ndarray:
    """Transmission through SMC-like dust, A(λ)/E(B−V) ≈ 1.39 (λ/µm)^−1.2 (Prevot et al. 1984's fit)."""
    return 10 ** (-0.4 * ebv[:, None] * 1.39 * (rest_wavelength / 1e4) ** -1.2)


def _quasars(templates: Templates, n: int, rng: np.random.Generator) -> np.ndarray:
    """Quasars from eigenbases, then: SMC-like reddening; below z 0.9 the host galaxy's starlight
    (up to 80 % of the light); above z 1.6 one in eight with broad absorption troughs (BAL)."""
    which = rng.integers(0, len(templates.quasars), n)
    z = np.empty(n)
    out = np.empty((n, LAMOST.npix))
    for k, (tset, z_min, z_max) in enumerate(templates.quasars):
        rows = np.flatnonzero(which == k)
        z[rows] = rng.uniform(z_min, z_max, len(rows))
        out[rows] = redshift_onto_grid(tset, _positive_combinations(tset.flux, len(rows), rng), z[rows])
    wavelength = LAMOST.wavelength
    rest = wavelength / (1 + z[:, None])
    out *= _smc_extinction(rest, rng.exponential(0.04, n).clip(0, 0.3))

    host = np.flatnonzero((z < 0.9) & (rng.random(n) < 0.7))
    galaxy = templates.galaxies[0]
    starlight = redshift_onto_grid(galaxy, _positive_combinations(galaxy.flux, len(host), rng), z[host])
    share = rng.uniform(0.05, 0.8, (len(host), 1))
    scale = np.median(out[host], axis=1, keepdims=True) / np.median(starlight, axis=1, keepdims=True)
    out[host] = (1 - share) * out[host] + share * starlight * scale

    for i in np.flatnonzero((z > 1.6) & (rng.random(n) < 0.125)):
        v_min = rng.uniform(1000, 10000)
        v_max = v_min + rng.uniform(3000, 20000)
        depth = rng.uniform(0.3, 0.95)
        for line in (1549.5, 1397.6, 1240.8):  # C IV, Si IV, N V: troughs at the same outflow speeds
            v = C_KM_S * (1 - rest[i] / line)
            trough = (v > v_min) & (v < v_max)
            out[i, trough] *= 1 - depth * np.sin(np.pi * (v[trough] - v_min) / (v_max - v_min)) ** 0.5
    return out


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


def _sky_spectrum(wavelength: np.ndarray) -> np.ndarray:
    """Night-sky emission relative to its blue continuum: the bright lines, and a dense OH forest
    whose strength grows to the red (a fixed draw of 160 lines, 6200–9300 Å)."""
    lines = np.random.default_rng(0)
    oh = np.sort(lines.uniform(6200, 9300, 160))
    strength = lines.exponential(1.0, 160) * ((oh - 6000) / 1500) ** 2
    sky = np.ones_like(wavelength)
    for centre, height in zip(np.concatenate([SKY_LINES, oh]), np.concatenate([np.full(len(SKY_LINES), 8.0), strength])):
        sky += height * np.exp(-0.5 * ((wavelength - centre) / 2.0) ** 2)
    return sky


SKY = _sky_spectrum(LAMOST.wavelength)


def _observe(flux: np.ndarray, rng: np.random.Generator, snr: np.ndarray) -> np.ndarray:
    """Noise at the given median S/N, sky residuals, dead pixels and an arbitrary flux scale.

    The variance mixes the object's photon noise with the sky's (σ² ∝ (1 − s)·flux + s·sky(λ)),
    the sky's share ``s`` larger for faint objects, as for survey targets near the limit, where
    the OH forest makes the red half far noisier than the blue; the blue edge is noisier too. The
    noise is then scaled so the median per-pixel S/N is ``snr``.
    """
    n = len(flux)
    wavelength = LAMOST.wavelength
    level = np.median(np.abs(flux), axis=1, keepdims=True) + 1e-12
    flux = flux / level
    sky_share = np.clip(rng.uniform(0.0, 1.0, (n, 1)) + 0.3 * (snr[:, None] < 3), 0, 1)
    blue_edge = 1 + 3 * np.exp(-(wavelength - wavelength[0]) / 150.0)  # throughput falls off below ~4000 Å
    variance = ((1 - sky_share) * (0.3 + np.clip(flux, 0, None)) + sky_share * SKY) * blue_edge**2
    sigma = np.sqrt(variance)
    sigma *= 1 / (snr[:, None] * np.median(sigma, axis=1, keepdims=True))
    observed = flux + rng.normal(size=flux.shape) * sigma
    observed += rng.normal(0, 0.3, size=(n, 1)) * sky_share * (SKY - 1) * sigma / np.sqrt(SKY)  # subtraction residuals
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
    """What pipelines cannot classify: real sources drowned in noise (half), spectra with most
    pixels masked, and flat, random-walk or spiky garbage."""
    kind = rng.choice(3, size=n, p=[0.5, 0.25, 0.25])
    out = np.empty((n, LAMOST.npix), dtype=np.float32)

    rows = np.flatnonzero(kind == 0)  # a real source drowned in noise
    flux = _any_source(templates, len(rows), rng)
    out[rows] = _observe(_instrument(flux, rng), rng, np.exp(rng.uniform(np.log(0.05), np.log(0.5), len(rows))))

    rows = np.flatnonzero(kind == 1)  # most of the spectrum masked
    flux = _any_source(templates, len(rows), rng)
    masked = _observe(_instrument(flux, rng), rng, _snr(rng, len(rows)))
    for i in range(len(rows)):
        keep = int(LAMOST.npix * rng.uniform(0.05, 1 - UNCLASSIFIABLE_MASKED_SHARE))
        start = rng.integers(0, LAMOST.npix - keep)
        masked[i, :start] = 0.0
        masked[i, start + keep :] = 0.0
    out[rows] = masked

    rows = np.flatnonzero(kind == 2)  # flat, random-walk or spiky garbage
    style = rng.integers(0, 3, len(rows))
    garbage = np.ones((len(rows), LAMOST.npix))
    walk = np.cumsum(rng.normal(size=(len(rows), LAMOST.npix)), axis=1)
    garbage[style == 1] = 5 + walk[style == 1] / np.sqrt(LAMOST.npix)
    spikes = rng.random((len(rows), LAMOST.npix)) < 0.02
    garbage[style == 2] = 1 + (spikes * rng.exponential(20, spikes.shape))[style == 2]
    out[rows] = _observe(garbage, rng, rng.uniform(2, 50, len(rows)))
    return out


def _snr(rng: np.random.Generator, n: int) -> np.ndarray:
    """Median S/N per pixel: a third faint (0.7–3, like most survey quasar targets), the rest 2–80."""
    faint = rng.random(n) < 1 / 3
    return np.exp(np.where(faint, rng.uniform(np.log(0.7), np.log(3.0), n), rng.uniform(np.log(2.0), np.log(80.0), n)))


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
