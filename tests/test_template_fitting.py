"""The template fits of the exported spectra graph: noise estimate, redshift scan, stellar subtype."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from training.data.spectra import TemplateSet, read_templates, redshift_onto_grid
from app.tasks.spectra.grid import LAMOST, LogGrid
from training.template_fitting import (
    RedshiftScan,
    StellarFit,
    _window_sum,
    mk_letter,
    spectrum_weights,
    template_systematic,
)


@pytest.fixture(scope="module")
def templates(spectra_data):
    return spectra_data / "templates" / "sdss_idlspec2d"


def test_window_sum_is_a_centred_moving_sum():
    x = np.random.default_rng(0).random((2, 300)).astype(np.float32)
    out = _window_sum(tf.constant(x), width=11).numpy()
    padded = np.pad(x, [(0, 0), (5, 6)])
    expected = np.stack([[row[i : i + 11].sum() for i in range(301)] for row in padded])
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_noise_and_snr_are_estimated_from_the_spectrum():
    rng = np.random.default_rng(1)
    flux = 1.0 + rng.normal(0, 0.1, (1, LAMOST.npix))
    flux[0, :200] = 0  # masked
    normalised, weights, snr = spectrum_weights(tf.constant(flux, tf.float32))
    assert snr.numpy()[0] == pytest.approx(10.0, rel=0.1)
    assert np.all(weights.numpy()[0, :200] == 0)
    assert np.median(weights.numpy()[0, 200:]) == pytest.approx(100.0, rel=0.15)


@pytest.mark.parametrize("name, z_min, z_max, z", [("spEigenGal-56436", -0.005, 1.5, 0.31), ("spEigenQSO-55732", 0.05, 5.0, 2.2)])
def test_redshift_scan_recovers_the_redshift(templates, name, z_min, z_max, z):
    basis = read_templates(templates / f"{name}.fits")
    rest = basis.flux[:1] + 0.3 * basis.flux[2:3]
    observed = redshift_onto_grid(basis, rest, np.array([z]))
    rng = np.random.default_rng(2)
    noisy = observed * (1 + 0.05 * np.linspace(-1, 1, LAMOST.npix)) + rng.normal(0, 0.02 * np.median(observed), observed.shape)
    scan = RedshiftScan(basis, z_min, z_max)
    out = scan(*spectrum_weights(tf.constant(noisy, tf.float32))[:2])
    assert out["z"].numpy()[0] == pytest.approx(z, abs=2e-3 * (1 + z))
    assert 0 < out["z_err"].numpy()[0] < 0.01
    assert out["delta_chi2"].numpy()[0] > 9 and not out["at_edge"].numpy()[0]


def test_a_template_systematic_widens_z_err_in_quadrature(templates):
    basis = read_templates(templates / "spEigenQSO-55732.fits")
    observed = redshift_onto_grid(basis, basis.flux[:1], np.array([2.0]))
    noisy = observed + np.random.default_rng(4).normal(0, 0.05 * np.median(observed), observed.shape)
    inputs = spectrum_weights(tf.constant(noisy, tf.float32))[:2]
    statistical = RedshiftScan(basis, 0.05, 5.0)(*inputs)
    widened = RedshiftScan(basis, 0.05, 5.0, systematic=7e-4)(*inputs)
    assert widened["z"].numpy()[0] == pytest.approx(statistical["z"].numpy()[0], rel=1e-6)
    expected = np.hypot(statistical["z_err"].numpy()[0], 7e-4 * (1 + statistical["z"].numpy()[0]))
    assert widened["z_err"].numpy()[0] == pytest.approx(expected, rel=1e-4)


def test_shaped_refit_follows_a_continuum_the_additive_terms_cannot(templates):
    # A quasar seen through a steep, curved throughput (host light and reddening do this to real
    # low-z AGN): the scan still finds z, and at that z every eigenspectrum times the star fit's
    # polynomial fits it, while the scan's additive terms leave most of the shape.
    basis = read_templates(templates / "spEigenQSO-55732.fits")
    observed = redshift_onto_grid(basis, basis.flux[:1], np.array([0.4]))
    x = np.linspace(-1, 1, LAMOST.npix)
    shaped = observed * np.exp(0.8 * x - 0.6 * x**2)
    noisy = shaped + np.random.default_rng(5).normal(0, 0.01 * np.median(shaped), shaped.shape)
    flux, weights = spectrum_weights(tf.constant(noisy, tf.float32))[:2]
    scan = RedshiftScan(basis, 0.05, 5.0)
    out = scan(flux, weights)
    assert out["z"].numpy()[0] == pytest.approx(0.4, abs=3e-3)
    refit = scan.shaped_chi2(flux, weights, out["shift"], StellarFit(read_templates(templates / "spEigenStar-53724.fits")).legendre)
    assert refit.numpy()[0] < 0.1 * out["chi2"].numpy()[0]


def test_template_systematic_measures_how_far_other_templates_are_put(templates):
    # Spectra from the scan's own basis come back where they were made; from a copy of it moved by
    # two pixels (2e-4 dex), 10^2e-4 − 1 = 4.6e-4 in (1 + z) away: a robust σ of 1.4826 × that.
    basis = read_templates(templates / "spEigenGal-56436.fits")
    scan = RedshiftScan(basis, -0.005, 1.5)
    moved = TemplateSet(basis.name, LogGrid(basis.grid.loglam0 + 2e-4, basis.grid.dloglam, basis.grid.npix), basis.flux)
    assert template_systematic(scan, [(basis, 0.05, 0.6)], n=40) < 5e-5
    assert template_systematic(scan, [(moved, 0.05, 0.6)], n=40) == pytest.approx(1.4826 * (10**2e-4 - 1), rel=0.1)


def test_redshift_scan_refuses_templates_that_do_not_cover_the_range(templates):
    with pytest.raises(ValueError, match="does not cover"):
        RedshiftScan(read_templates(templates / "spEigenGal-56436.fits"), 0.0, 6.0)


def test_stellar_fit_finds_the_type_through_a_calibration_error(templates):
    basis = read_templates(templates / "spEigenStar-53724.fits")
    fit = StellarFit(basis)
    rng = np.random.default_rng(3)
    rows = [0, 2, 3, 4]  # A0, G2, K5, M2
    observed = redshift_onto_grid(basis, basis.flux[rows], np.full(len(rows), 50 / 299_792.458))
    response = 1 + 0.3 * np.linspace(-1, 1, LAMOST.npix) ** 2  # an uncalibrated throughput
    noisy = observed * response + rng.normal(0, 0.01 * np.median(observed), observed.shape)
    out = fit(*spectrum_weights(tf.constant(noisy, tf.float32))[:2])
    assert [s.decode() for s in out["subtype"].numpy()] == ["A", "G", "K", "M"]
    assert [s.decode() for s in out["template"].numpy()] == ["A0", "G2", "K5", "M2"]
    np.testing.assert_allclose(out["z"].numpy() * 299_792.458, 50, atol=25)


@pytest.mark.parametrize(
    "name, letter",
    [("G8V (101501)", "G"), ("sd:F0 (G_84-29)", "F"), ("sdF3 (140283)", "F"), ("O8/O9 (167771)", "O"), ("WDcooler", ""),
     ("Carbon", ""), ("Ldwarf", ""), ("M0V", "M"), ("CalciumWD", "")],
)
def test_mk_letter(name, letter):
    assert mk_letter(name) == letter


def test_stellar_fit_chooses_the_type_at_the_stars_velocity():
    # Narrow deep lines (a "G2") and broad shallow ones at the same wavelengths (an "F5"): a G2
    # moving 4 pixels (280 km/s) looks more like the F5 at rest than like itself.
    grid = LogGrid(3.55, 1e-4, 4100)
    pixel = np.arange(grid.npix)[None, :]
    centres = np.searchsorted(grid.wavelength, [4500.0, 5200.0, 6000.0, 6500.0, 8000.0])[:, None]
    lines = lambda depth, width: 1 - depth * np.exp(-0.5 * ((pixel - centres) / width) ** 2).sum(0)  # noqa: E731
    basis = TemplateSet("made-up stars", grid, np.stack([lines(0.6, 1.2), lines(0.25, 4.0)]), ("G2", "F5"))
    observed = redshift_onto_grid(basis, basis.flux[:1], np.array([10 ** (4 * 1e-4) - 1]))
    noisy = observed + np.random.default_rng(4).normal(0, 0.005, observed.shape)
    out = StellarFit(basis)(*spectrum_weights(tf.constant(noisy, tf.float32))[:2])
    assert out["template"].numpy()[0].decode() == "G2"
    assert out["z"].numpy()[0] * 299_792.458 == pytest.approx(276, abs=20)


def test_stellar_fit_of_no_spectra_is_empty(templates):
    out = StellarFit(read_templates(templates / "spEigenStar-53724.fits"))(tf.zeros([0, LAMOST.npix]), tf.zeros([0, LAMOST.npix]))
    assert out["subtype"].shape == (0,) and out["z"].shape == (0,)
