"""What the exported graph answers beyond the classifier: the redshift and stellar template fits,
labels for ambiguous and masked spectra, and the warning bits (:class:`SpectrumAnalysis`)."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from app.tasks.spectra.grid import UNCLASSIFIABLE_MASKED_SHARE
from app.tasks.spectra.spec import CLASSES, HEAVILY_MASKED_SHARE, ZWARNING_BITS
from training.data.spectra import Templates, read_templates
from training.tasks.spectra.config import AMBIGUOUS_PROBABILITY, FEATURE_DELTA_CHI2, REDSHIFT_TEMPLATES, STELLAR_TEMPLATES
from training.tasks.spectra.stellar_types import StellarTypes
from training.template_fitting import RedshiftScan, StellarFit, spectrum_weights, template_systematic


def redshift_scan(templates_dir: Path, name: str, systematic: float = 0.0) -> RedshiftScan:
    """The redshift scan of class ``name`` (REDSHIFT_TEMPLATES)."""
    path, z_min, z_max, step = REDSHIFT_TEMPLATES[name]
    return RedshiftScan(read_templates(templates_dir / path), z_min, z_max, coarse_step=step, systematic=systematic)


def z_systematics(templates_dir: Path) -> dict[str, float]:
    """Each scan's template systematic in Δz / (1 + z), measured on spectra made from the training
    split's eigenbases (other templates than the scans'): galaxies at z 0–0.8, quasars over each
    basis's range."""
    training = Templates.load(templates_dir, "train")
    others = {"GALAXY": [(basis, 0.0, 0.8) for basis in training.galaxies], "QSO": training.quasars}
    return {name: round(template_systematic(redshift_scan(templates_dir, name), others[name]), 6) for name in REDSHIFT_TEMPLATES}


class SpectrumAnalysis(tf.Module):
    """The classifier's probabilities, with the redshift and stellar fits and the warning bits
    (everything the exported graph answers)."""

    def __init__(
        self, model: keras.Model, templates_dir: Path, z_systematic: dict[str, float] | None = None,
        stellar_types: StellarTypes | None = None,
    ):
        """``stellar_types``: the stars' fit with types in LAMOST's convention; without it, the SDSS
        template's letter (versions up to 8)."""
        super().__init__(name="spectrum_analysis")
        self.model = model
        self.scans = {name: redshift_scan(templates_dir, name, (z_systematic or {}).get(name, 0.0)) for name in REDSHIFT_TEMPLATES}
        self.stars = stellar_types or StellarFit(read_templates(templates_dir / STELLAR_TEMPLATES))
        self.class_names = tf.constant(CLASSES)

    def _best_class(self, flux: tf.Tensor, weights: tf.Tensor, found: list[dict]) -> tf.Tensor:
        """The class (index into CLASSES) whose fit explains an ambiguous spectrum best. Each redshift
        scan is also refitted at its best z with the stellar fit's continuum freedom (every
        eigenspectrum times the star's polynomial, :meth:`RedshiftScan.shaped_chi2`): a star times a
        polynomial follows a quasar-plus-host continuum that the scan's few additive terms cannot.
        Every model pays Schwarz's penalty, ln(pixels) per parameter, scaled by the best fit's
        reduced χ² (the misfit real spectra have), and each class scores its better model."""
        star, *scans = found
        terms = self.stars.legendre.shape[0]
        models = [(star["chi2"], terms)]
        for scan, fit in zip(self.scans.values(), scans):
            shaped = scan.shaped_chi2(flux, weights, fit["shift"], self.stars.legendre)
            models += [(fit["chi2"], scan.k + scan.p), (shaped, scan.k * terms)]
        chi2 = tf.stack([c for c, _ in models], axis=1)
        parameters = tf.constant([[n for _, n in models]], tf.float32)
        pixels = tf.maximum(tf.reduce_sum(tf.cast(weights > 0, tf.float32), axis=1), 1.0)
        per_parameter = tf.reduce_min(chi2, axis=1) / pixels * tf.math.log(pixels)
        score = chi2 + per_parameter[:, None] * parameters  # STAR, then each scan's additive and shaped fits
        per_class = tf.concat([score[:, :1], tf.reduce_min(tf.reshape(score[:, 1:], [-1, len(scans), 2]), axis=2)], axis=1)
        return tf.argmin(per_class, axis=1, output_type=tf.int32)

    def __call__(self, flux: tf.Tensor) -> dict[str, tf.Tensor]:
        probabilities = self.model(flux, training=False)
        likeliest = tf.argmax(probabilities, axis=1, output_type=tf.int32)
        normalised, weights, median_snr = spectrum_weights(flux)
        unknown = likeliest == CLASSES.index("UNKNOWN")
        ambiguous = tf.reduce_max(probabilities, axis=1) < AMBIGUOUS_PROBABILITY
        masked = tf.reduce_mean(tf.cast(flux == 0, tf.float32), axis=1)
        # The classifier learned UNKNOWN for masking only above UNCLASSIFIABLE_MASKED_SHARE; a real
        # source with less masked than that (one spectrograph arm lost) is the fits' to decide.
        partly_masked_unknown = unknown & (masked > HEAVILY_MASKED_SHARE) & (masked < UNCLASSIFIABLE_MASKED_SHARE)
        # Each spectrum gets one fit: its label's, or for UNKNOWN that of the likeliest astrophysical
        # class. Fitting only those rows makes a batch cost one fit per spectrum, not three.
        fit_class = tf.where(unknown, tf.argmax(probabilities[:, :3], axis=1, output_type=tf.int32), likeliest)
        fitters = {"STAR": self.stars, **self.scans}
        # Outputs a fit does not give keep these (finite, so every output is valid JSON: no other
        # redshift fits at all is the largest float32).
        outputs = {"z": 0.0, "z_err": 0.0, "chi2": 0.0, "delta_chi2": float(np.finfo(np.float32).max), "at_edge": False, "subtype": "", "subclass": "", "template": ""}
        merged = {key: tf.fill(tf.shape(likeliest), tf.constant(default)) for key, default in outputs.items()}

        def fill(found: dict, rows: tf.Tensor) -> dict:
            return {key: found.get(key, tf.fill(tf.shape(rows)[:1], tf.constant(default))) for key, default in outputs.items()}

        for name, fit in fitters.items():
            rows = tf.where((fit_class == CLASSES.index(name)) & (unknown | ~ambiguous))
            found = fill(fit(tf.gather_nd(normalised, rows), tf.gather_nd(weights, rows)), rows)
            merged = {key: tf.tensor_scatter_nd_update(merged[key], rows, found[key]) for key in outputs}
        # An ambiguous class gets all three fits, over the same pixels (the stellar fit's: not the
        # telluric bands or the blue end), and the class with the smallest χ² wins. A doubtful or
        # partly masked UNKNOWN is decided so too when the spectrum has features: the best
        # template beating a smooth continuum by FEATURE_DELTA_CHI2, and not mostly masked.
        rows = tf.where(ambiguous | partly_masked_unknown)
        spectra, pixels = tf.gather_nd(normalised, rows), tf.gather_nd(weights, rows) * self.stars.fit_mask
        found = [fit(spectra, pixels) for fit in fitters.values()]
        fits = [fill(f, rows) for f in found]
        chi2 = tf.stack([f["chi2"] for f in fits], axis=1)
        has_features = (self.stars.continuum_chi2(spectra, pixels) - tf.reduce_min(chi2, axis=1) > FEATURE_DELTA_CHI2) & (
            tf.gather_nd(masked, rows) < UNCLASSIFIABLE_MASKED_SHARE
        )
        decided = ~tf.gather_nd(unknown, rows) | has_features
        best = self._best_class(spectra, pixels, found)  # fitters are in CLASSES' order
        decided_rows = tf.boolean_mask(rows, decided)
        label = tf.tensor_scatter_nd_update(likeliest, decided_rows, tf.boolean_mask(best, decided))
        for key in outputs:
            chosen = tf.gather(tf.stack([f[key] for f in fits], axis=1), best, batch_dims=1)
            merged[key] = tf.tensor_scatter_nd_update(merged[key], decided_rows, tf.boolean_mask(chosen, decided))
        bits = ZWARNING_BITS
        zwarning = (
            bits["LOW_SNR"] * tf.cast(median_snr < 2.0, tf.int32)
            + bits["AMBIGUOUS_CLASS"] * tf.cast(ambiguous, tf.int32)
            + bits["SMALL_DELTA_CHI2"] * tf.cast(merged["delta_chi2"] < 9.0, tf.int32)
            + bits["Z_AT_EDGE"] * tf.cast(merged["at_edge"], tf.int32)
            + bits["HEAVILY_MASKED"] * tf.cast(masked > HEAVILY_MASKED_SHARE, tf.int32)
            + bits["UNCLASSIFIED"] * tf.cast(label == CLASSES.index("UNKNOWN"), tf.int32)
        )
        return {
            "probabilities": probabilities,
            "label": tf.gather(self.class_names, label),
            "z": merged["z"],
            "z_err": merged["z_err"],
            "delta_chi2": merged["delta_chi2"],
            "subtype": merged["subtype"],
            "subclass": merged["subclass"],
            "stellar_template": merged["template"],
            "median_snr": median_snr,
            "zwarning": zwarning,
        }
