"""Stellar types in LAMOST's convention: learned from stars LAMOST typed, beside SDSS's template."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from app.tasks.spectra.grid import LAMOST
from training.data.spectra import TemplateSet, read_templates, redshift_onto_grid
from training.data.spectra_real import LabelledSpectrum, load_real_train, object_split
from training.tasks.spectra.stellar_types import (
    fit_stellar_types,
    real_train_stars,
    real_train_training_part,
    subclass_report,
    subtype_report,
    type_index,
    without_prefix,
)
from training.template_fitting import StellarFit, spectrum_weights


def test_type_index_reads_lamost_subclasses():
    assert [type_index(s) for s in ("A0", "A7IV", "F5", "G9", "K7", "dM0", "gM0", "sdM2")] == [20, 27, 35, 49, 57, 60, 60, 62]


def test_type_reports_count_letters_and_tenths():
    true, guess = ["G8", "G2", "F5", "K7"], ["K0", "G2", "G0", ""]
    letters = subtype_report(true, [without_prefix(g)[:1] for g in guess])
    assert letters["letter_accuracy"] == 0.25  # only G2; '' (no type) is never right
    assert letters["within_one_letter"] == 0.75
    subclasses = subclass_report(true, guess)
    assert subclasses["subclass_exact"] == 0.25 and subclasses["subclass_within_2"] == 0.5  # G8 → K0 is two tenths


def test_real_train_is_split_by_object(spectra_data):
    stars = load_real_train(spectra_data, ("STAR",))
    assert len(stars) == 80 and {s.subclass for s in stars} >= {"A0", "G2", "M4"}
    train, held = object_split(stars, 0.2, seed=0)
    assert sorted(train + held) == list(range(80)) and len(held) == 16
    assert not {stars[i].designation for i in train} & {stars[i].designation for i in held}


def test_classifier_training_part_leaves_the_held_out_objects_out(spectra_data):
    _, held = real_train_stars(spectra_data)
    part = real_train_training_part(spectra_data)
    assert part and not {s.designation for s in held} & {s.designation for s in part}
    assert {s.label for s in part} <= {"STAR", "GALAXY"}


def test_learns_a_convention_other_than_the_templates(spectra_data):
    """Stars made from the G2 template that the "survey" calls F8 are typed F, while the SDSS
    template stays G2: the convention comes from the labels, the template name from SDSS."""
    basis = read_templates(spectra_data / "templates" / "sdss_idlspec2d" / "spEigenStar-53724.fits")
    sdss = StellarFit(basis)
    rng = np.random.default_rng(0)
    relabel = {"G2": "F8"}
    rows = [0, 1, 2, 3, 4]  # A0 F5 G2 K5 M2

    def observe(n: int, tag: str) -> list[LabelledSpectrum]:
        out = []
        for k in rows:
            flux = redshift_onto_grid(basis, np.repeat(basis.flux[k : k + 1], n, 0), rng.normal(0, 1e-4, n))
            flux = flux * (1 + rng.normal(0, 0.02, (n, 1)) * np.linspace(-1, 1, LAMOST.npix))
            flux += rng.normal(0, 0.02 * np.median(flux), flux.shape)
            name = basis.names[k]
            out += [LabelledSpectrum(f"{tag}{k}-{i}", f.astype(np.float32), "STAR", 0.0, 50.0, relabel.get(name, name), "", f"{tag}{k}-{i}") for i, f in enumerate(flux)]
        return out

    fitted = fit_stellar_types(sdss, observe(8, "t"), observe(3, "h"))
    assert fitted.held_out["subtype"]["letter_accuracy"] == 1.0 and fitted.training_objects == 40
    g2 = observe(2, "x")[4:6]
    out = fitted.module(*spectrum_weights(tf.constant(np.stack([s.flux for s in g2])))[:2])
    assert [s.decode() for s in out["subtype"].numpy()] == ["F", "F"]
    assert [s.decode() for s in out["template"].numpy()] == ["G2", "G2"]
    assert [s.decode() for s in out["subclass"].numpy()] == ["F8", "F8"]


def test_stars_without_an_mk_letter_keep_an_empty_type(spectra_data):
    """A spectrum whose best SDSS template has no MK letter (here a white dwarf) gets '' for both
    LAMOST fields: LAMOST's training stars teach no type for it."""
    basis = read_templates(spectra_data / "templates" / "sdss_idlspec2d" / "spEigenStar-53724.fits")
    wavelength = 10**basis.grid.loglam
    white_dwarf = (wavelength / 6000.0) ** -3 * (1 - 0.6 * np.exp(-0.5 * ((wavelength - 4862.7) / 40.0) ** 2))
    with_wd = TemplateSet(basis.name, basis.grid, np.vstack([basis.flux, white_dwarf]), (*basis.names, "WD"))
    stars = load_real_train(spectra_data, ("STAR",))
    train, held = object_split(stars, 0.2, seed=0)
    fitted = fit_stellar_types(StellarFit(with_wd), [stars[i] for i in train], [stars[i] for i in held])
    observed = redshift_onto_grid(with_wd, white_dwarf[None], np.zeros(1)).astype(np.float32)
    out = fitted.module(*spectrum_weights(tf.constant(observed))[:2])
    assert out["template"].numpy()[0] == b"WD"
    assert out["subtype"].numpy()[0] == b"" and out["subclass"].numpy()[0] == b""
