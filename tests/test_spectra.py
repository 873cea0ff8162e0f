"""Spectrum resampling, the simulator, the classifier's layers and its train → export → evaluate path."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from app import model_store
from app.tasks.spectra import spec as spectra_spec
from app.tasks.spectra.grid import LAMOST, LogGrid, edges_from_centres, rebin, resample_to_model_grid
from training.__main__ import main
from training.augment import mixup
from training.data.spectra import CLASSES, Templates, TemplateSet, read_templates, redshift_onto_grid, simulate
from training.layers.spectrum_normalization import SpectrumNormalization
from training.tasks.spectra import backbone as spectra_backbone
from training.tasks.spectra import config as spectra_config
from training.tasks.spectra import evaluate as spectra_evaluate
from training.tasks.spectra import export as spectra_export
from training.tasks.spectra import head as spectra_head

pytestmark = pytest.mark.slow  # the slow tier (`make test-slow`): train→export smoke runs


def test_model_grid_is_lamost():
    assert LAMOST.npix == 3904
    assert LAMOST.wavelength[0] == pytest.approx(3700.0, abs=1)
    assert LAMOST.wavelength[-1] == pytest.approx(9089.0, abs=1)


def test_rebin_onto_its_own_grid_is_the_identity():
    flux = np.random.default_rng(0).normal(size=LAMOST.npix)
    mean, coverage = rebin(LAMOST.edges, flux, LAMOST.edges)
    np.testing.assert_allclose(mean, flux, atol=1e-9)
    np.testing.assert_allclose(coverage, 1.0)


@settings(max_examples=30, deadline=None)
@given(st.integers(50, 400), st.integers(20, 200), st.integers(0, 2**31 - 1))
def test_rebin_conserves_the_integral(n_src, n_dst, seed):
    rng = np.random.default_rng(seed)
    src_edges = np.cumsum(np.concatenate([[1000.0], rng.uniform(0.5, 2.0, n_src)]))
    dst_edges = np.linspace(src_edges[0], src_edges[-1], n_dst + 1)
    flux = rng.normal(size=n_src)
    mean, coverage = rebin(src_edges, flux, dst_edges)
    assert np.sum(mean * np.diff(dst_edges)) == pytest.approx(np.sum(flux * np.diff(src_edges)), rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(coverage, 1.0)


def test_resampling_masks_what_the_input_does_not_cover_and_bad_pixels():
    wavelength = np.linspace(5000, 8000, 4000)
    flux = np.full_like(wavelength, 3.0)
    ivar = np.ones_like(wavelength)
    ivar[1000:1400] = 0  # a bad stretch
    out = resample_to_model_grid(wavelength, flux, ivar)
    inside = (LAMOST.wavelength > 5010) & (LAMOST.wavelength < 7990)
    bad = (LAMOST.wavelength > wavelength[1000] + 2) & (LAMOST.wavelength < wavelength[1399] - 2)
    assert np.all(out[LAMOST.wavelength < 4990] == 0) and np.all(out[LAMOST.wavelength > 8010] == 0)
    assert np.all(out[bad] == 0)
    np.testing.assert_allclose(out[inside & ~bad & (out != 0)], 3.0, rtol=1e-5)
    assert np.mean(out[inside] != 0) > 0.8


def test_redshift_moves_a_line_to_the_right_pixel():
    grid = LogGrid(3.3, 1e-4, 8000)
    rest = np.ones(grid.npix)
    rest[np.argmin(np.abs(grid.wavelength - 5000.0))] = 100.0  # a narrow line at 5000 Å
    template = TemplateSet("line", grid, rest[None])
    for z in (0.0, 0.2, 0.5, 0.8):
        observed = redshift_onto_grid(template, template.flux, np.array([z]))[0]
        expected = (np.log10(5000.0 * (1 + z)) - LAMOST.loglam0) / LAMOST.dloglam
        assert abs(int(np.argmax(observed)) - expected) <= 1, z


def test_simulation_is_deterministic_balanced_and_finite(spectra_data):
    templates = Templates.load(spectra_data / "templates", "train")
    flux, labels = simulate(templates, 6, seed=5)
    again, _ = simulate(templates, 6, seed=5)
    other, _ = simulate(templates, 6, seed=6)
    assert flux.shape == (24, LAMOST.npix) and flux.dtype == np.float32
    assert np.bincount(labels).tolist() == [6] * len(CLASSES)
    assert np.isfinite(flux).all()
    np.testing.assert_array_equal(flux, again)
    assert not np.array_equal(flux, other)


def test_test_split_holds_out_templates(spectra_data):
    train = Templates.load(spectra_data / "templates", "train")
    test = Templates.load(spectra_data / "templates", "test")
    assert [len(s.flux) for s in train.stars] == [8, 8] and [len(s.flux) for s in test.stars] == [2, 2]
    assert {g.name for g in train.galaxies}.isdisjoint(g.name for g in test.galaxies)
    assert {q.name for q, *_ in train.quasars}.isdisjoint(q.name for q, *_ in test.quasars)


def test_spectrum_normalization_ignores_scale_and_keeps_masks():
    flux = np.random.default_rng(1).uniform(1, 2, size=(2, LAMOST.npix)).astype(np.float32)
    flux[:, :100] = 0
    layer = SpectrumNormalization()
    np.testing.assert_allclose(layer(flux).numpy(), layer(flux * 1234.5).numpy(), rtol=1e-5)
    assert np.all(layer(flux).numpy()[:, :100] == 0)


def test_mixup_makes_convex_combinations():
    x = tf.constant(np.eye(6, dtype=np.float32))
    y = tf.one_hot([0, 1, 2, 3, 0, 1], 4)
    mixed_x, mixed_y = mixup(x, y, alpha=0.4, seed=3)
    np.testing.assert_allclose(tf.reduce_sum(mixed_y, axis=1).numpy(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(tf.reduce_sum(mixed_x, axis=1).numpy(), 1.0, rtol=1e-6)
    assert np.all(mixed_x.numpy() >= 0)


def test_export_manifest_and_evaluate_json(tiny_spectra_store, spectra_data, spectra_cache, capsys):
    version_dir = model_store.resolve_version(tiny_spectra_store / "spectra")
    manifest = model_store.read_manifest(version_dir)
    assert manifest["classes"] == list(CLASSES)
    assert set(manifest["metrics"]) == {"synthetic_test", "lamost_real_stars", "real_train_held_out", "real_validation", "real_lowz_agn"}
    assert manifest["metrics"]["lamost_real_stars"]["n"] == 3
    # the LAMOST type mapping is learned from real_train but a fifth of its objects, measured on that fifth
    types = manifest["stellar_types"]
    assert types["learned_from"] == {"stars": 64, "objects": 32, "held_out": spectra_config.REAL_TRAIN_HELD_OUT}
    assert manifest["metrics"]["real_train_held_out"]["n"] == 16 and manifest["metrics"]["real_train_held_out"]["objects"] == 8
    assert manifest["zwarning_bits"] == spectra_spec.ZWARNING_BITS
    main([
        "spectra", "evaluate", "--data-dir", str(spectra_data), "--model-root", str(tiny_spectra_store),
        "--test-per-class", "8", "--cache-dir", str(spectra_cache),
    ])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["task"] == "spectra"
    assert {
        "macro_f1", "accuracy", "real_star_accuracy", "subtype_letter_accuracy", "subtype_within_one_letter",
        "real_balanced_recall", "real_bright_balanced_recall", "real_bright_galaxy_recall", "real_bright_z_within_6000_km_s",
    } <= set(result)
    real = result["real_validation"]
    assert real["all"]["n"] == 3 and real["bright"]["n"] == 2  # the fixture's S/N 1.5 quasar is faint
    assert set(real["all"]["per_class"]) == {"STAR", "GALAXY", "QSO"}
    assert sum(sum(row.values()) for row in real["all"]["confusion"].values()) == 3
    assert real["redshift_all"]["n"] == 2 and real["redshift_bright"]["n"] == 1
    lowz = result["real_lowz_agn"]  # reported apart; its quasar has no catalogue redshift to grade
    assert lowz["all"]["n"] == 1 and lowz["redshift_all"]["n"] == 0
    assert "lowz_agn_qso_recall" in result
    assert result["lamost_real_stars"]["subtype"]["n"] == 3
    assert {"subclass_exact", "subclass_within_1", "subclass_within_2"} == set(result["lamost_real_stars"]["subclass"])
    assert "held_out_subtype_letter_accuracy" in result


def test_real_sky_metrics():
    from training.metrics import recall_report

    report = recall_report(["STAR", "STAR", "QSO", "GALAXY"], ["STAR", "UNKNOWN", "QSO", "QSO"], CLASSES)
    assert report["per_class"]["STAR"] == {"recall": 0.5, "precision": 1.0, "support": 2}
    assert report["per_class"]["QSO"]["precision"] == 0.5
    assert report["balanced_recall"] == pytest.approx((0.5 + 1 + 0) / 3, abs=1e-4)
    assert report["confusion"]["STAR"] == {"STAR": 1, "UNKNOWN": 1}
    z = spectra_evaluate.redshift_report(np.array([1.0, 2.0, 0.5]), np.array([1.01, 2.5, 0.5]), np.array([0.02, 0.01, 0.001]))
    assert z["within_6000_km_s"] == pytest.approx(2 / 3, abs=1e-4) and z["catastrophic_rate"] == pytest.approx(1 / 3, abs=1e-4)
    # of the two within 6,000 km/s, |Δz| 0.01 against z_err 0.02 (inside) and 0 against 0.001
    assert z["within_z_err"] == 1.0 and z["median_abs_dz_over_z_err"] == pytest.approx(0.25)
    letters = spectra_evaluate.subtype_report(["G2", "K5", "A0", "M1"], ["G", "G", "F", "K"])
    assert letters["letter_accuracy"] == 0.25 and letters["within_one_letter"] == 1.0


def test_exported_model_matches_in_process_model(tiny_spectra_store, tiny_spectra_run, spectra_data):
    model = spectra_backbone.build_model(spectra_config.Config.of_run(tiny_spectra_run))
    model.load_weights(tiny_spectra_run / "best.weights.h5")
    flux, _ = simulate(Templates.load(spectra_data / "templates", "dev"), 3, seed=11)
    serve = tf.saved_model.load(str(tiny_spectra_store / "spectra" / "1")).signatures["serving_default"]
    out = serve(flux=tf.constant(flux))
    np.testing.assert_allclose(out["probabilities"].numpy(), model(flux, training=False).numpy(), rtol=1e-4, atol=1e-6)
    # The label is the likeliest class, unless that is ambiguous: then the template fits decide.
    likeliest = [CLASSES[i] for i in out["probabilities"].numpy().argmax(axis=1)]
    ambiguous = out["zwarning"].numpy() & spectra_spec.ZWARNING_BITS["AMBIGUOUS_CLASS"]
    for label, top, doubt in zip(out["label"].numpy(), likeliest, ambiguous):
        assert label.decode() == top if not doubt else label.decode() in (*CLASSES[:3], top)
    # The fits in the graph answer what the same modules answer in process.
    types = spectra_export.lamost_stellar_types(spectra_data)  # deterministic: the export's own mapping
    in_process = spectra_head.SpectrumAnalysis(model, spectra_data / "templates", stellar_types=types.module)(tf.constant(flux))
    # (graph and eager FFTs round differently; z's sub-pixel parabola feels it at ~1e-5 of a pixel's 2e-4)
    for key, atol in (("z", 1e-4), ("median_snr", 1e-4)):
        np.testing.assert_allclose(out[key].numpy(), in_process[key].numpy(), rtol=1e-3, atol=atol)
    # z_err comes from the χ² parabola's curvature, a difference of nearly equal float32 χ² values: for
    # a poor fit (this barely trained classifier sends noise to the quasar scan) rounding alone can
    # move it by a factor of ~2, so only its scale is compared.
    np.testing.assert_array_less(np.abs(np.log(out["z_err"].numpy() / in_process["z_err"].numpy())), np.log(3.0))
    for key in ("subtype", "stellar_template", "zwarning", "label"):
        np.testing.assert_array_equal(out[key].numpy(), in_process[key].numpy())
    np.testing.assert_array_equal(out["subclass"].numpy(), in_process["subclass"].numpy())


def test_edges_from_centres_brackets_each_centre():
    centres = np.array([1.0, 2.0, 4.0, 8.0])
    edges = edges_from_centres(centres)
    assert np.all(edges[:-1] < centres) and np.all(centres < edges[1:])


def test_an_ensemble_export_averages_its_members(tiny_spectra_run, spectra_data, spectra_cache, tmp_path):
    main([
        "spectra", "export", "--data-dir", str(spectra_data), "--run-dir", str(tiny_spectra_run),
        "--ensemble", str(tiny_spectra_run), "--model-root", str(tmp_path), "--test-per-class", "4",
        "--cache-dir", str(spectra_cache),
    ])
    manifest = model_store.read_manifest(tmp_path / "spectra" / "1")
    assert [m["run_dir"] for m in manifest["ensemble"]] == [str(tiny_spectra_run)] * 2
    assert set(manifest["z_systematic"]) == {"GALAXY", "QSO"} and min(manifest["z_systematic"].values()) >= 0
    flux, _ = simulate(Templates.load(spectra_data / "templates", "dev"), 2, seed=12)
    serve = tf.saved_model.load(str(tmp_path / "spectra" / "1")).signatures["serving_default"]
    single = spectra_backbone.load_classifier(tiny_spectra_run)
    np.testing.assert_allclose(serve(flux=tf.constant(flux))["probabilities"].numpy(), single(flux).numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "probabilities, featureless, masked, label",
    [
        ([0.45, 0.3, 0.1, 0.15], False, 0.0, "GALAXY"),
        ([0.9, 0.05, 0.03, 0.02], False, 0.0, "STAR"),
        ([0.1, 0.25, 0.1, 0.55], False, 0.0, "GALAXY"),  # a doubtful UNKNOWN with features is decided too
        ([0.1, 0.25, 0.1, 0.55], True, 0.0, "UNKNOWN"),  # … one without stays UNKNOWN
        ([0.05, 0.1, 0.05, 0.8], False, 0.0, "UNKNOWN"),  # a confident UNKNOWN stays
        ([0.05, 0.1, 0.05, 0.8], False, 0.5, "GALAXY"),  # … unless an arm is lost: the classifier never learned that
        ([0.05, 0.1, 0.05, 0.8], False, 0.8, "UNKNOWN"),  # … mostly masked is what it learned as UNKNOWN
    ],
)
def test_an_ambiguous_class_is_decided_by_the_template_fits(spectra_data, probabilities, featureless, masked, label):
    # A galaxy at z 0.3 from the eigenbasis the redshift scan uses (or a smooth continuum of the
    # same brightness), its red end masked (0 = masked), under a stand-in classifier with fixed
    # probabilities: ambiguous (top < 0.6), the fits call it a galaxy; confident, STAR stays.
    basis = read_templates(spectra_data / "templates" / spectra_config.REDSHIFT_TEMPLATES["GALAXY"][0])
    flux = redshift_onto_grid(basis, basis.flux[:1] + 0.3 * basis.flux[1:2], np.array([0.3]))
    if featureless:
        flux = np.full_like(flux, np.median(flux)) * np.linspace(0.8, 1.2, flux.shape[1])
    flux = flux + np.random.default_rng(5).normal(0, 0.02 * np.median(flux), flux.shape)
    flux[:, int(LAMOST.npix * (1 - masked)) :] = 0.0
    inputs = keras.Input((LAMOST.npix,))
    fixed = keras.layers.Lambda(lambda x: tf.tile(tf.constant([probabilities]), [tf.shape(x)[0], 1]))(inputs)
    analysis = spectra_head.SpectrumAnalysis(keras.Model(inputs, fixed), spectra_data / "templates")
    out = analysis(tf.constant(flux, tf.float32))
    assert out["label"].numpy()[0].decode() == label
    warnings = out["zwarning"].numpy()[0]
    assert bool(warnings & spectra_spec.ZWARNING_BITS["AMBIGUOUS_CLASS"]) == (max(probabilities) < 0.6)
    assert bool(warnings & spectra_spec.ZWARNING_BITS["UNCLASSIFIED"]) == (label == "UNKNOWN")
    assert bool(warnings & spectra_spec.ZWARNING_BITS["HEAVILY_MASKED"]) == (masked > spectra_spec.HEAVILY_MASKED_SHARE)
    if label == "GALAXY":
        assert out["z"].numpy()[0] == pytest.approx(0.3, abs=2e-3)
        assert out["probabilities"].numpy()[0] == pytest.approx(probabilities)  # the classifier's, as they were
