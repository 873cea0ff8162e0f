"""Redshifts and stellar subtypes by template χ² fits, in TensorFlow, for the exported graph.

What Redrock and the SDSS pipeline do, as matrix operations on the model grid:

- **Redshift scan** (GALAXY, QSO): at each trial redshift the spectrum is fitted by a
  linear combination of rest-frame eigenspectra, shifted by the redshift, plus a few
  Legendre polynomials for calibration errors; χ²(z) is the misfit. On a log-λ grid a
  redshift is a shift, so every sum the fit needs at every redshift is a
  cross-correlation of an observed-frame array with a template product, computed at
  once with FFTs. The normal equations are then solved on a coarse grid of shifts and
  again at single-pixel shifts around the best one; a parabola through the three χ²
  values nearest the minimum gives z, and its curvature (Δχ² = 1) the uncertainty.
- **Stellar subtype** (STAR): each stellar template times a low-order polynomial
  (a multiplicative one: LAMOST spectra are not flux calibrated), fitted at rest; a
  short shift scan with the best gives the radial velocity, and the templates fitted
  again at that velocity give the subtype (the best one's MK letter).

Weights come from the spectrum itself (the model input has no inverse variance): the
local scatter of neighbouring pixels' differences, which is the noise wherever the
spectrum is smooth on a pixel's scale.
"""

from __future__ import annotations

import functools
import re

import numpy as np
import tensorflow as tf

from app.tasks.spectra.grid import LAMOST, LogGrid, rebin
from training.data.spectra import TemplateSet, eigenbasis_spectra

LN10 = np.log(10.0)
C_KM_S = 299_792.458
MK_LETTERS = ("O", "B", "A", "F", "G", "K", "M")
NOISE_WINDOW = 101  # pixels over which the local noise is estimated
TELLURIC_BANDS = ((6860.0, 6960.0), (7150.0, 7350.0), (7580.0, 7700.0))  # O2 B band, H2O, O2 A band (Å)


def mk_letter(name: str) -> str:
    """The MK letter of a stellar template name ('G8V (101501)' → 'G', 'sdF3' → 'F'); '' when it has none
    (white dwarfs, carbon stars, L dwarfs, CVs)."""
    name = re.sub(r"^(sd:?|esd)", "", name.strip())
    return name[0] if name[:1] in MK_LETTERS else ""


def _on_rest_grid(basis: TemplateSet, grid: LogGrid, offset: int, length: int) -> np.ndarray:
    """Resample ``basis`` onto ``length`` pixels of ``grid``'s step starting ``offset`` pixels
    before the model grid's first: flux-conserving, 0 where the basis does not reach."""
    rest = LogGrid(grid.loglam0 - offset * grid.dloglam, grid.dloglam, length)
    out = np.zeros((len(basis.flux), length))
    for i, component in enumerate(basis.flux):
        mean, coverage = rebin(basis.grid.edges, component, rest.edges)
        out[i] = np.where(coverage > 0.99, mean, 0.0)
    return out


def _legendre(npix: int, terms: int) -> np.ndarray:
    x = np.linspace(-1, 1, npix)
    return np.stack([np.polynomial.legendre.Legendre.basis(k)(x) for k in range(terms)])


# The fits' geometry (polynomials, masks, shift indices) depends on the grid alone, so every fit of
# the same shape shares one tensor of each and an exported graph stores it once (the stellar
# types hold two stellar fits).
@functools.lru_cache(maxsize=None)
def _legendre_rows(npix: int, terms: int) -> tf.Tensor:
    """The Legendre polynomials ``[terms, npix]`` over the grid."""
    return tf.constant(_legendre(npix, terms), tf.float32)


@functools.lru_cache(maxsize=None)
def _legendre_products(npix: int, terms: int) -> tf.Tensor:
    """Their products ``P_l·P_m`` for l ≤ m, in :func:`_legendre_pairs` order: ``[pairs, npix]``."""
    legendre = _legendre(npix, terms)
    return tf.constant(np.stack([legendre[l] * legendre[m] for l, m in _legendre_pairs(terms)]), tf.float32)


def _legendre_pairs(terms: int) -> list[tuple[int, int]]:
    return [(l, m) for l in range(terms) for m in range(l, terms)]


@functools.lru_cache(maxsize=None)
def _stellar_fit_geometry(grid: LogGrid, blue_limit: float, max_shift: int) -> tuple[tf.Tensor, tf.Tensor]:
    """The pixels a stellar fit uses ``[npix]`` (telluric bands and the noisy blue end carry no
    information on the star's type), and the rest-grid column under each pixel at each shift
    ``[2·max_shift + 1, npix]``."""
    wavelength = grid.wavelength
    ignored = wavelength < blue_limit
    for low, high in TELLURIC_BANDS:
        ignored |= (wavelength > low) & (wavelength < high)
    shifts = np.arange(-max_shift, max_shift + 1)
    columns = np.arange(grid.npix)[None, :] + max_shift - shifts[:, None]
    return tf.constant(~ignored, tf.float32), tf.constant(columns, tf.int32)


def _next_power_of_two(n: int) -> int:
    return 1 << (n - 1).bit_length()


def _window_sum(x: tf.Tensor, width: int = NOISE_WINDOW) -> tf.Tensor:
    """Sums over a centred window of ``width`` pixels ``[B, n]`` → ``[B, n + 1]`` (from a cumulative
    sum: linear in n, where a pooling op with a wide window is not)."""
    half = width // 2
    padded = tf.pad(x, [[0, 0], [half + 1, half + 1]])
    cumulative = tf.cumsum(padded, axis=-1)
    return cumulative[:, width:] - cumulative[:, :-width]


def spectrum_weights(flux: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Normalised flux, inverse-variance weights (0 where masked) and the median S/N per pixel.

    The noise is √(½·mean of squared neighbour differences) over a window, with differences
    above 5× the spectrum's typical one clipped so lines and spikes barely raise it.
    """
    flux = tf.cast(flux, tf.float32)
    valid = tf.cast(flux != 0, tf.float32)
    count = tf.maximum(tf.reduce_sum(valid, axis=-1, keepdims=True), 1.0)
    scale = tf.maximum(tf.reduce_sum(tf.abs(flux), axis=-1, keepdims=True) / count, 1e-30)
    flux = flux / scale
    pair = valid[:, 1:] * valid[:, :-1]
    diff = tf.abs(flux[:, 1:] - flux[:, :-1]) * pair
    typical = tf.reduce_sum(diff, axis=-1, keepdims=True) / tf.maximum(tf.reduce_sum(pair, axis=-1, keepdims=True), 1.0)
    diff2 = tf.minimum(diff, 5 * typical) ** 2
    local = _window_sum(diff2) / tf.maximum(_window_sum(pair), 1e-3)
    variance = tf.maximum(local / 2, 1e-6 * tf.square(typical) + 1e-12)
    weights = valid / variance
    snr = tf.abs(flux) * tf.sqrt(weights)
    # Median over valid pixels: masked ones sort first as -1.
    ranked = tf.sort(tf.where(valid > 0, snr, -1.0), axis=-1)
    n_valid = tf.cast(tf.reduce_sum(valid, axis=-1), tf.int32)
    middle = tf.shape(flux)[1] - n_valid + n_valid // 2
    median_snr = tf.where(n_valid > 0, tf.gather(ranked, tf.minimum(middle, tf.shape(flux)[1] - 1), batch_dims=1), 0.0)
    return flux, weights, median_snr


class RedshiftScan(tf.Module):
    """χ²(z) of one eigenbasis (+ additive Legendre terms) over a redshift range, by FFT cross-correlation."""

    def __init__(
        self, basis: TemplateSet, z_min: float, z_max: float, poly_terms: int = 3, coarse_step: int = 2,
        systematic: float = 0.0, grid: LogGrid = LAMOST, name: str | None = None,
    ):
        """``systematic``: 1σ of the templates' own error in Δz / (1 + z), which the χ² curvature
        cannot see (:func:`template_systematic`); added to ``z_err`` in quadrature."""
        super().__init__(name=name)
        self.systematic = systematic
        npix, d = grid.npix, grid.dloglam
        # Rest grid aligned to the model grid, starting ``offset`` pixels before it: template
        # pixel j sits under observed pixel j + s at shift s, where log10(1 + z) = d·(offset + s).
        offset = int(np.ceil((grid.loglam0 - basis.grid.loglam0) / d))
        s_min = int(np.ceil(np.log10(1 + z_min) / d)) - offset
        s_max = int(np.floor(np.log10(1 + z_max) / d)) - offset
        # Only template pixels some shift puts under the model grid are kept: j ∈ [-s_max, npix - 1 - s_min].
        first, length = -s_max, npix + s_max - s_min
        templates = _on_rest_grid(basis, grid, offset - first, length)
        if not np.all(templates.any(axis=0)):
            raise ValueError(f"{basis.name} does not cover the model grid over z {z_min}–{z_max}")
        self.k, self.p, self.coarse_step, self.npix = len(templates), poly_terms, coarse_step, npix
        self.rest_templates = tf.constant(templates, tf.float32)  # [k, npix + n_shift - 1]
        z = 10 ** (d * (offset + np.arange(s_min, s_max + 1))) - 1
        self.z_grid = tf.constant(z, tf.float32)
        self.n_shift = len(z)
        self.fft_length = _next_power_of_two(npix + length)
        # In the trimmed template, shift s becomes s + first (≤ 0): FFT lags, taken modulo its length.
        self.lags = tf.constant((np.arange(s_min, s_max + 1) + first) % self.fft_length, tf.int32)
        self.pairs = [(a, b) for a in range(self.k) for b in range(a, self.k)]
        products = np.stack([templates[a] * templates[b] for a, b in self.pairs] + list(templates))
        # conj(FFT) of the template side; the correlations are irfft(FFT(observed) · this).
        self.template_fft = tf.constant(np.conj(np.fft.rfft(products, self.fft_length)).astype(np.complex64))
        self.legendre = _legendre_rows(npix, poly_terms)
        self.step_dloglam = d

    def _correlations(self, flux: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
        """Σ w T_a T_b, Σ w P_l T_a and Σ w f T_a at every shift: ``[B, pairs + p·k + k, S]``."""
        p, n_pairs = self.p, len(self.pairs)
        signals = tf.concat([weights[:, None], weights[:, None] * self.legendre[None], (weights * flux)[:, None]], axis=1)
        # Padded by hand: rfft's own padding is skipped for an empty batch in eager mode.
        signals = tf.pad(signals, [[0, 0], [0, 0], [0, self.fft_length - signals.shape[-1]]])
        spectra = tf.signal.rfft(signals, [self.fft_length])  # [B, 2 + p, F]
        t = self.template_fft
        products = tf.concat(
            [
                spectra[:, :1] * t[None, :n_pairs],
                tf.reshape(spectra[:, 1 : 1 + p, None] * t[None, None, n_pairs:], [tf.shape(flux)[0], p * self.k, -1]),
                spectra[:, -1:] * t[None, n_pairs:],
            ],
            axis=1,
        )
        return tf.gather(tf.signal.irfft(products, [self.fft_length]), self.lags, axis=-1)

    def _chi2(self, correlations: tf.Tensor, constants: tuple, shifts: tf.Tensor) -> tf.Tensor:
        """χ² at ``shifts`` (``[B, n]`` indices into the scan) from the correlations and the
        shift-independent sums (Σ w P_l P_m, Σ w f P_l, Σ w f²)."""
        k, p, n_pairs = self.k, self.p, len(self.pairs)
        pp, fp, ff = constants
        c = tf.gather(tf.transpose(correlations, [0, 2, 1]), shifts, batch_dims=1)  # [B, n, C]
        tt = [[None] * k for _ in range(k)]
        for i, (a, b) in enumerate(self.pairs):
            tt[a][b] = tt[b][a] = c[..., i]
        pt = lambda l, a: c[..., n_pairs + l * k + a]  # noqa: E731
        shape = tf.shape(c)[:2]
        rows = [tf.stack(tt[a] + [pt(l, a) for l in range(p)], axis=-1) for a in range(k)]
        rows += [
            tf.stack([pt(l, a) for a in range(k)] + [tf.broadcast_to(pp[:, l, m, None], shape) for m in range(p)], axis=-1)
            for l in range(p)
        ]
        matrix = tf.stack(rows, axis=-2)  # [B, n, k + p, k + p]
        vector = tf.concat([c[..., n_pairs + p * k :], tf.broadcast_to(fp[:, None], tf.concat([shape, [p]], 0))], -1)
        return _least_squares_chi2(matrix, vector, ff)

    def __call__(self, flux: tf.Tensor, weights: tf.Tensor) -> dict[str, tf.Tensor]:
        """Best z, its 1σ uncertainty, its χ², Δχ² to the best fit more than 1,000 km/s away, and
        whether the best z sits at the edge of the scanned range; ``shift``, the best z's index
        in the scan (for :meth:`shaped_chi2`)."""
        correlations = self._correlations(flux, weights)
        constants = (
            tf.einsum("bn,ln,mn->blm", weights, self.legendre, self.legendre),
            tf.einsum("bn,ln->bl", weights * flux, self.legendre),
            tf.reduce_sum(weights * flux * flux, axis=-1),
        )
        batch, n_shift = tf.shape(flux)[0], self.n_shift
        coarse = tf.range(0, n_shift, self.coarse_step)
        chi2_coarse = self._chi2(correlations, constants, tf.tile(coarse[None], [batch, 1]))
        best_coarse = tf.gather(coarse, tf.argmin(chi2_coarse, axis=1, output_type=tf.int32))
        # Single-pixel shifts around the coarse minimum.
        around = self.coarse_step + 1
        window = tf.clip_by_value(best_coarse[:, None] + tf.range(-around, around + 1)[None], 0, n_shift - 1)
        j, c0, offset, curvature = _parabola_minimum(self._chi2(correlations, constants, window))
        centre = tf.gather(window, j, batch_dims=1)
        d = self.step_dloglam
        z = (1 + tf.gather(self.z_grid, centre)) * tf.pow(10.0, offset * d) - 1
        z_err = tf.sqrt(_z_error(z, c0, curvature, weights, self.k + self.p, d) ** 2 + (self.systematic * (1 + z)) ** 2)
        far = int(np.ceil(1000 / C_KM_S / LN10 / d))
        distance = tf.abs(coarse[None] - best_coarse[:, None])
        second = tf.reduce_min(tf.where(distance > far, chi2_coarse, tf.float32.max), axis=1)
        chi2_best = tf.minimum(c0, tf.reduce_min(chi2_coarse, axis=1))
        return {
            "z": z,
            "z_err": z_err,
            "chi2": chi2_best,
            "delta_chi2": second - chi2_best,
            "at_edge": (centre <= 1) | (centre >= n_shift - 2),
            "shift": centre,
        }

    def shaped_chi2(self, flux: tf.Tensor, weights: tf.Tensor, shift: tf.Tensor, legendre: tf.Tensor) -> tf.Tensor:
        """χ² ``[B]`` at scan index ``shift`` ``[B]`` of every eigenspectrum times its own polynomial
        (a combination of the rows of ``legendre`` ``[p, npix]``). Given :class:`StellarFit`'s, the
        scan has the stellar fit's continuum freedom and the two χ² can be compared: the scan's
        few additive terms cannot follow a quasar-plus-host continuum that a star times a
        polynomial follows."""
        # Observed pixel m sees trimmed template pixel m + (n_shift - 1 - shift) (see __init__).
        columns = (self.n_shift - 1 - shift)[:, None] + tf.range(self.npix)[None]
        templates = tf.transpose(tf.gather(self.rest_templates, columns, axis=1), [1, 0, 2])  # [B, k, npix]
        basis = tf.reshape(templates[:, :, None] * legendre[None, None], [tf.shape(flux)[0], self.k * legendre.shape[0], self.npix])
        matrix = tf.einsum("bin,bjn->bij", basis * weights[:, None], basis)
        vector = tf.einsum("bin,bn->bi", basis, weights * flux)
        ff = tf.reduce_sum(weights * flux * flux, axis=-1)
        return _least_squares_chi2(matrix[:, None], vector[:, None], ff)[:, 0]


def template_systematic(
    scan: RedshiftScan, bases: list[tuple[TemplateSet, float, float]], n: int = 300, snr: float = 50.0, seed: int = 0
) -> float:
    """How far ``scan``'s templates put spectra of the same class made from *other* templates
    (``bases``, each with its redshift range): 1.4826 × the median |Δz| / (1 + z) of those within
    6,000 km/s (a robust σ), at an S/N where the statistical error is small beside it."""
    rng = np.random.default_rng(seed)
    flux, z = eigenbasis_spectra(bases, n, rng)
    flux = flux + rng.normal(size=flux.shape) * np.median(np.abs(flux), axis=1, keepdims=True) / snr
    normalised, weights, _ = spectrum_weights(tf.constant(flux, tf.float32))
    error = np.abs(scan(normalised, weights)["z"].numpy() - z) / (1 + z)
    within = error[error < 0.02]
    return float(1.4826 * np.median(within)) if len(within) else 0.0


def _parabola_minimum(chi2: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """For χ² ``[B, n]`` at consecutive single-pixel shifts: the index of the smallest, its value,
    the shift (in pixels, within ±½) of the vertex of the parabola through it and its neighbours
    (0 at either end of a row), and that parabola's curvature: χ² ≈ c0 + curvature·(shift − s0)²."""
    last = chi2.shape[1] - 1
    j = tf.argmin(chi2, axis=1, output_type=tf.int32)
    c0 = tf.gather(chi2, j, batch_dims=1)
    before = tf.gather(chi2, tf.maximum(j - 1, 0), batch_dims=1)
    after = tf.gather(chi2, tf.minimum(j + 1, last), batch_dims=1)
    curvature = tf.maximum((after + before - 2 * c0) / 2, 1e-3)
    offset = tf.clip_by_value((before - after) / (4 * curvature), -0.5, 0.5)
    return j, c0, tf.where((j == 0) | (j == last), 0.0, offset), curvature


def _z_error(z: tf.Tensor, chi2: tf.Tensor, curvature: tf.Tensor, weights: tf.Tensor, n_parameters: int, dloglam: float):
    """1σ of z from the χ² curvature (Δχ² = 1), widened by √(reduced χ²) where the fit is worse
    than the noise says."""
    dof = tf.maximum(tf.reduce_sum(tf.cast(weights > 0, tf.float32), axis=-1) - n_parameters, 1.0)
    return (1 + z) * LN10 * dloglam / tf.sqrt(curvature) * tf.sqrt(tf.maximum(chi2 / dof, 1.0))


def _least_squares_chi2(matrix: tf.Tensor, vector: tf.Tensor, ff: tf.Tensor) -> tf.Tensor:
    """min_c Σ w (f − Σ c_i B_i)² = Σ w f² − bᵀ A⁻¹ b for normal equations ``A c = b`` ``[..., n, n]``;
    a tiny ridge keeps degenerate fits (fully masked regions) solvable."""
    diagonal = tf.linalg.diag_part(matrix)
    ridge = 1e-6 * tf.reduce_mean(diagonal, axis=-1, keepdims=True) + 1e-9
    chol = tf.linalg.cholesky(matrix + tf.linalg.diag(ridge * tf.ones_like(diagonal)))
    solution = tf.linalg.cholesky_solve(chol, vector[..., None])[..., 0]
    chi2 = ff[:, None] - tf.reduce_sum(solution * vector, axis=-1)
    return tf.where(tf.math.is_finite(chi2), chi2, tf.float32.max)


class StellarFit(tf.Module):
    """Radial velocity from a short shift scan with the best stellar template (times a Legendre
    polynomial) at rest, and the best template at that velocity."""

    def __init__(
        self, basis: TemplateSet, poly_terms: int = 8, max_shift: int = 10, blue_limit: float = 3900.0,
        grid: LogGrid = LAMOST, name=None,
    ):
        super().__init__(name=name)
        npix = grid.npix
        self.fit_mask, self.columns = _stellar_fit_geometry(grid, blue_limit, max_shift)  # [npix], [2s + 1, npix]
        # Rest grid covering the model grid plus max_shift pixels either side.
        templates = _on_rest_grid(basis, grid, max_shift, npix + 2 * max_shift)
        self.names = list(basis.names) or [""] * len(templates)
        self.letters = [mk_letter(n) for n in self.names]
        norm = np.sqrt(np.mean(templates**2, axis=1, keepdims=True)) + 1e-30
        self.templates = tf.constant(templates / norm, tf.float32)  # [T, npix + 2·max_shift]
        self.max_shift, self.p, self.npix, self.step_dloglam = max_shift, poly_terms, npix, grid.dloglam
        self.legendre = _legendre_rows(npix, poly_terms)
        self.pairs = _legendre_pairs(poly_terms)
        self.legendre_products = _legendre_products(npix, poly_terms)
        self.subtype_names = tf.constant(self.letters)
        self.template_names = tf.constant(self.names)

    def _fit(self, flux, weights, templates):
        """χ² of each template in ``templates`` ``[B?, T, npix]`` times a polynomial: ``[B, T]``."""
        p = self.p
        weighted_products = weights[:, None] * self.legendre_products[None]  # [B, pairs, n]
        square = templates**2
        if len(templates.shape) == 2:
            upper = tf.einsum("bqn,tn->btq", weighted_products, square)
            vector = tf.einsum("bln,tn->btl", (weights * flux)[:, None] * self.legendre[None], templates)
        else:
            upper = tf.einsum("bqn,btn->btq", weighted_products, square)
            vector = tf.einsum("bln,btn->btl", (weights * flux)[:, None] * self.legendre[None], templates)
        entries = [[None] * p for _ in range(p)]
        for i, (l, m) in enumerate(self.pairs):
            entries[l][m] = entries[m][l] = upper[..., i]
        matrix = tf.stack([tf.stack(row, axis=-1) for row in entries], axis=-2)
        ff = tf.reduce_sum(weights * flux * flux, axis=-1)
        return _least_squares_chi2(matrix, vector, ff)

    def continuum_chi2(self, flux: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
        """χ² of the polynomial alone, a smooth continuum without lines: ``[B]`` (a template must
        beat it by much for a spectrum to have features)."""
        return self._fit(flux, weights * self.fit_mask, tf.ones((1, self.npix)))[:, 0]

    def _velocity_scan(self, flux, weights, best):
        """χ² of each spectrum's template ``best`` ``[B]`` at every shift within ±max_shift pixels,
        and the parabola through its minimum (see ``_parabola_minimum``)."""
        # Template pixel j sits under observed pixel j + shift: observed i sees template i + s − shift.
        shifted = tf.gather(tf.gather(self.templates, best), self.columns, axis=1)  # [B, 2s + 1, npix]
        return _parabola_minimum(self._fit(flux, weights, shifted))

    def __call__(self, flux: tf.Tensor, weights: tf.Tensor) -> dict[str, tf.Tensor]:
        s = self.max_shift
        weights = weights * self.fit_mask
        at_rest = self._fit(flux, weights, self.templates[:, s : s + self.npix])
        j = self._velocity_scan(flux, weights, tf.argmin(at_rest, axis=1, output_type=tf.int32))[0]
        # The type is chosen again with every template moved to the star's velocity (at rest, a
        # star moving a pixel or two, 70–140 km/s, matches templates with shallower lines), and
        # the velocity measured again with that template.
        moved = tf.gather(self.templates, tf.gather(self.columns, j), axis=1)  # [T, B, npix]
        template_chi2 = self._fit(flux, weights, tf.transpose(moved, [1, 0, 2]))
        best = tf.argmin(template_chi2, axis=1, output_type=tf.int32)
        j, c0, offset, curvature = self._velocity_scan(flux, weights, best)
        z = tf.pow(10.0, (tf.cast(j - s, tf.float32) + offset) * self.step_dloglam) - 1
        return {
            "template": tf.gather(self.template_names, best),
            "subtype": tf.gather(self.subtype_names, best),
            "z": z,
            "z_err": _z_error(z, c0, curvature, weights, self.p, self.step_dloglam),
            "chi2": c0,
            "template_chi2": template_chi2,
        }
