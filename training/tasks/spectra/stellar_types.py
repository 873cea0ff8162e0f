"""Stellar types in LAMOST's convention, learned from LAMOST's own labels (``real_train/``).

SDSS's stellar templates type LAMOST stars one letter off for a third of them (LAMOST puts the F/G
boundary later, calls many SDSS "B" stars A, …). LAMOST's pipeline types a star by the template of
its own library that fits best; this learns its boundaries from spectra LAMOST typed:

1. **LAMOST templates**: each LAMOST subclass's mean rest-frame spectrum over the training stars.
2. **Features**: how much worse than the best each template fits, for the 40 SDSS templates and
   the LAMOST ones (:func:`template_features`).
3. **Softmax regressions** on them: one over the MK letters, one over the subclasses; the answer
   is the likeliest letter and the likeliest subclass of that letter.

Stars whose best SDSS template has no MK letter (white dwarfs, carbon stars, L/T dwarfs) keep an
empty type — LAMOST's training stars have none of them — unless a LAMOST template fits them
better. The choice of this design over simpler ones (SDSS features alone, LAMOST templates alone)
was made by 5-fold cross-validation by object on the training part of ``real_train``
(docs/spectra.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from scipy.optimize import minimize

from app.tasks.spectra.grid import LAMOST, LogGrid
from training.data.spectra import TemplateSet
from training.data.spectra_real import LabelledSpectrum, load_real_train, object_split
from training.tasks.spectra.config import REAL_TRAIN_HELD_OUT
from training.template_fitting import MK_LETTERS, StellarFit, spectrum_weights

L2 = 1e-3  # softmax weight decay, chosen by cross-validation (1e-4 … 1e-2 within 0.01)


def without_prefix(subclass: str) -> str:
    """A LAMOST subclass without its luminosity prefix ('dM0' → 'M0', 'sdM2' → 'M2', 'G5' → 'G5')."""
    return subclass.strip().lstrip("dsg")


def type_index(subclass: str) -> int:
    """LAMOST subclass → 10 · MK letter + digit ('G5' → 45, 'dM0' → 60, 'A7IV' → 27)."""
    name = without_prefix(subclass)
    digit = name[1:2]
    return MK_LETTERS.index(name[0]) * 10 + (int(digit) if digit.isdigit() else 0)


def subclass_name(index: int) -> str:
    return f"{MK_LETTERS[index // 10]}{index % 10}"


def template_features(chi2: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """−log(1 + q) with q each template's χ² above the best one's, in units of the best fit's reduced
    χ², per √pixel: how much worse each template fits, on a scale that does not grow with S/N."""
    pixels = tf.reduce_sum(tf.cast(weights > 0, tf.float32), axis=-1, keepdims=True)
    best = tf.reduce_min(chi2, axis=-1, keepdims=True)
    reduced = tf.maximum(best / tf.maximum(pixels - 8.0, 1.0), 1e-3)
    return -tf.math.log1p((chi2 - best) / reduced / tf.sqrt(tf.maximum(pixels, 1.0)))


def fit_softmax(x: np.ndarray, y: np.ndarray, classes: int, l2: float = L2) -> np.ndarray:
    """Multinomial logistic regression (L-BFGS): weights ``[features + 1, classes]``, bias last."""
    n, p = x.shape
    target = np.eye(classes)[y]

    def loss(flat: np.ndarray) -> tuple[float, np.ndarray]:
        w = flat.reshape(p + 1, classes)
        logits = x @ w[:-1] + w[-1]
        logits -= logits.max(axis=1, keepdims=True)
        prob = np.exp(logits)
        prob /= prob.sum(axis=1, keepdims=True)
        grad = np.vstack([x.T @ (prob - target) / n + 2 * l2 * w[:-1], (prob - target).sum(0) / n])
        return -(target * np.log(prob + 1e-12)).sum() / n + l2 * (w[:-1] ** 2).sum(), grad.ravel()

    result = minimize(loss, np.zeros((p + 1) * classes), jac=True, method="L-BFGS-B", options={"maxiter": 1000})
    return result.x.reshape(p + 1, classes)


def lamost_templates(flux: np.ndarray, weights: np.ndarray, z: np.ndarray, index: np.ndarray, max_shift: int = 10) -> TemplateSet:
    """Each subclass's mean spectrum (normalised flux, inverse-variance-masked) moved to rest by the
    stars' measured velocities ``z``, on the model grid widened by ``max_shift`` pixels a side (what
    :class:`StellarFit` shifts)."""
    rest = LogGrid(LAMOST.loglam0 - max_shift * LAMOST.dloglam, LAMOST.dloglam, LAMOST.npix + 2 * max_shift)
    pixels = np.arange(-max_shift, LAMOST.npix + max_shift)
    observed = np.arange(LAMOST.npix)
    subclasses = np.unique(index)
    means = np.zeros((len(subclasses), rest.npix), np.float32)
    for k, subclass in enumerate(subclasses):
        total, count = np.zeros(rest.npix), np.zeros(rest.npix)
        for i in np.flatnonzero(index == subclass):
            source = pixels + np.log10(1 + z[i]) / LAMOST.dloglam  # rest pixel j was observed here
            good = np.interp(source, observed, (weights[i] > 0).astype(float), left=0, right=0) > 0.99
            total += np.where(good, np.interp(source, observed, flux[i]), 0.0)
            count += good
        means[k] = total / np.maximum(count, 1)
    return TemplateSet("lamost_real_train", rest, means, tuple(subclass_name(s) for s in subclasses))


class StellarTypes(tf.Module):
    """The SDSS stellar fit (velocity, ``stellar_template``), with ``subtype`` (MK letter) and
    ``subclass`` in LAMOST's convention."""

    def __init__(self, sdss: StellarFit, lamost: StellarFit, mean: np.ndarray, scale: np.ndarray,
                 letter_weights: np.ndarray, letters: list[str], subclass_weights: np.ndarray, subclasses: list[str]):
        super().__init__(name="stellar_types")
        self.sdss, self.lamost = sdss, lamost
        self.fit_mask, self.legendre = sdss.fit_mask, sdss.legendre
        self.mean, self.scale = tf.constant(mean, tf.float32), tf.constant(scale, tf.float32)
        self.letter_weights = tf.constant(letter_weights, tf.float32)
        self.subclass_weights = tf.constant(subclass_weights, tf.float32)
        self.letters = tf.constant(letters)
        self.subclasses = tf.constant(subclasses)
        # Which letter each subclass belongs to: [subclasses, letters].
        self.member = tf.constant([[s[0] == letter for letter in letters] for s in subclasses], tf.bool)
        self.has_letter = tf.constant([bool(letter) for letter in sdss.letters])

    def continuum_chi2(self, flux: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
        return self.sdss.continuum_chi2(flux, weights)

    def features(self, flux: tf.Tensor, weights: tf.Tensor) -> tuple[dict, dict, tf.Tensor]:
        """The SDSS and LAMOST fits' outputs, and the standardised features of both ``[B, F]``."""
        sdss = self.sdss(flux, weights)
        lamost = self.lamost(flux, weights)
        masked = weights * self.fit_mask
        x = tf.concat([template_features(sdss["template_chi2"], masked), template_features(lamost["template_chi2"], masked)], -1)
        return sdss, lamost, (x - self.mean) / self.scale

    def __call__(self, flux: tf.Tensor, weights: tf.Tensor) -> dict[str, tf.Tensor]:
        sdss, lamost, x = self.features(flux, weights)
        letter = tf.argmax(x @ self.letter_weights[:-1] + self.letter_weights[-1], axis=-1, output_type=tf.int32)
        sub_logits = x @ self.subclass_weights[:-1] + self.subclass_weights[-1]
        allowed = tf.transpose(tf.gather(self.member, letter, axis=1))  # [B, subclasses]
        subclass = tf.argmax(tf.where(allowed, sub_logits, sub_logits.dtype.min), axis=-1, output_type=tf.int32)
        # Typed unless a letterless SDSS template (white dwarf, carbon star, L dwarf) fits best of
        # all: LAMOST's own templates, every one lettered, fitting better type the star as LAMOST
        # would (A stars whose best SDSS template is the white dwarf's).
        typed = tf.gather(self.has_letter, tf.argmin(sdss["template_chi2"], axis=-1, output_type=tf.int32)) | (
            tf.reduce_min(lamost["template_chi2"], axis=-1) < tf.reduce_min(sdss["template_chi2"], axis=-1)
        )
        return {
            **sdss,
            "subtype": tf.where(typed, tf.gather(self.letters, letter), ""),
            "subclass": tf.where(typed, tf.gather(self.subclasses, subclass), ""),
        }


@dataclass
class StellarTypeFit:
    """A fitted :class:`StellarTypes` and what it scored on the held-out stars."""

    module: StellarTypes
    held_out: dict
    training_stars: int
    training_objects: int


def _in_batches(function, flux: np.ndarray, weights: np.ndarray, batch: int = 128) -> dict[str, np.ndarray]:
    """``function(flux, weights)`` (normalised flux and weights, as :func:`spectrum_weights` gives
    them) over batches, its outputs concatenated."""
    parts = [function(tf.constant(flux[i : i + batch]), tf.constant(weights[i : i + batch])) for i in range(0, len(flux), batch)]
    return {key: np.concatenate([p[key].numpy() for p in parts]) for key in parts[0]}


def _weighted(spectra: list[LabelledSpectrum]) -> tuple[np.ndarray, np.ndarray]:
    """The spectra's normalised flux and weights (:func:`spectrum_weights`)."""
    flux, weights, _ = spectrum_weights(tf.constant(np.stack([s.flux for s in spectra]), tf.float32))
    return flux.numpy(), weights.numpy()


def _out_of_fold_chi2(flux, weights, z, index, objects, folds: int = 4) -> np.ndarray:
    """Each training star's χ² (normalised ``flux``) against LAMOST templates built without its own
    object (inner folds by object), so the regression does not learn to trust templates that
    contain the star itself."""
    subclasses = np.unique(index)
    out = np.zeros((len(flux), len(subclasses)), np.float32)
    fold = {o: i % folds for i, o in enumerate(np.random.default_rng(0).permutation(np.unique(objects)))}
    which = np.array([fold[o] for o in objects])
    for k in range(folds):
        rest, held = np.flatnonzero(which != k), np.flatnonzero(which == k)
        templates = lamost_templates(flux[rest], weights[rest], z[rest], index[rest])
        fit = StellarFit(templates)
        chi2 = _in_batches(fit, flux[held], weights[held])["template_chi2"]
        columns = np.searchsorted(subclasses, [type_index(n) for n in templates.names])
        full = np.tile(chi2.max(axis=1, keepdims=True), (1, len(subclasses)))  # a subclass absent from the fold fits worst
        full[:, columns] = chi2
        out[held] = full
    return out


def _split_by_object(stars: list[LabelledSpectrum]) -> tuple[list[LabelledSpectrum], list[LabelledSpectrum]]:
    train, held_out = object_split(stars, REAL_TRAIN_HELD_OUT["share"], REAL_TRAIN_HELD_OUT["seed"])
    return [stars[i] for i in train], [stars[i] for i in held_out]


def real_train_stars(data_dir: Path) -> tuple[list[LabelledSpectrum], list[LabelledSpectrum]]:
    """``real_train``'s stars split by object (:data:`REAL_TRAIN_HELD_OUT`): the ones the mapping is
    learned from, and the held-out ones it is measured on."""
    return _split_by_object(load_real_train(data_dir, ("STAR",)))


def real_train_training_part(data_dir: Path) -> list[LabelledSpectrum]:
    """``real_train``'s stars and galaxies but the held-out stars' objects: what a classifier may
    learn from while the held-out fifth still measures it."""
    spectra = load_real_train(data_dir, ("STAR", "GALAXY"))
    _, held_out = _split_by_object([s for s in spectra if s.label == "STAR"])  # the stars in real_train_stars' order
    held = {s.designation for s in held_out}
    return [s for s in spectra if s.designation not in held]


def fit_stellar_types(sdss: StellarFit, train: list[LabelledSpectrum], held_out: list[LabelledSpectrum]) -> StellarTypeFit:
    """Learn LAMOST's types from ``train`` (LAMOST stars) and score letter and subclass on ``held_out``."""
    flux, weights = _weighted(train)
    index = np.array([type_index(s.subclass) for s in train])
    objects = np.array([s.designation for s in train])
    fitted = _in_batches(sdss, flux, weights)
    lamost = StellarFit(lamost_templates(flux, weights, fitted["z"], index))
    oof = _out_of_fold_chi2(flux, weights, fitted["z"], index, objects)
    masked = weights * sdss.fit_mask.numpy()
    x = tf.concat([template_features(tf.constant(fitted["template_chi2"]), masked), template_features(tf.constant(oof), masked)], -1).numpy()
    mean, scale = x.mean(0), x.std(0) + 1e-6
    x = (x - mean) / scale
    letters = sorted({i // 10 for i in index})
    subclasses = sorted(set(index))
    letter_weights = fit_softmax(x, np.searchsorted(letters, index // 10), len(letters))
    subclass_weights = fit_softmax(x, np.searchsorted(subclasses, index), len(subclasses))
    module = StellarTypes(
        sdss, lamost, mean, scale, letter_weights, [MK_LETTERS[i] for i in letters], subclass_weights,
        [subclass_name(i) for i in subclasses],
    )
    held = _in_batches(module, *_weighted(held_out))
    true = [s.subclass for s in held_out]
    report = {
        "n": len(held_out),
        "objects": len({s.designation for s in held_out}),
        "subtype": subtype_report(true, [x.decode() for x in held["subtype"]]),
        "subclass": subclass_report(true, [x.decode() for x in held["subclass"]]),
    }
    return StellarTypeFit(module, report, len(train), len(set(objects)))


def subtype_report(true_subclass: list[str], subtype: list[str]) -> dict:
    """MK letter right, and within one letter (O B A F G K M), against the catalogue's subclass
    (LAMOST's luminosity prefixes dropped: 'dM0' is an M)."""
    true = [without_prefix(t)[:1] for t in true_subclass]
    right = [t == p for t, p in zip(true, subtype)]
    near = [
        t in MK_LETTERS and p in MK_LETTERS and abs(MK_LETTERS.index(t) - MK_LETTERS.index(p)) <= 1
        for t, p in zip(true, subtype)
    ]
    confusion: dict[str, dict[str, int]] = {}
    for t, p in zip(true, subtype):
        confusion.setdefault(t, {}).setdefault(p or "-", 0)
        confusion[t][p or "-"] += 1
    return {
        "n": len(true),
        "letter_accuracy": round(float(np.mean(right)), 4),
        "within_one_letter": round(float(np.mean(near)), 4),
        "confusion": confusion,
    }


def subclass_report(true_subclass: list[str], subclass: list[str]) -> dict:
    """The subclass exact and within 1 and 2 (in tenths of a letter: G8 → K0 is 2), against the
    catalogue's subclasses; '' (no type) is never right."""
    true = [type_index(t) for t in true_subclass]
    guess = [type_index(s) if s else None for s in subclass]
    share = lambda hits: round(float(np.mean(hits)), 4)  # noqa: E731
    return {
        "subclass_exact": share([g == t for t, g in zip(true, guess)]),
        "subclass_within_1": share([g is not None and abs(g - t) <= 1 for t, g in zip(true, guess)]),
        "subclass_within_2": share([g is not None and abs(g - t) <= 2 for t, g in zip(true, guess)]),
    }
