"""``python -m training spectra evaluate``: the exported graph on the synthetic test split, the real
BOSS/DESI spectra and low-z AGN (classes, redshifts), the real LAMOST stars and real_train's held-out
stars (classes, MK letters and subclasses in LAMOST's convention)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from app import model_store
from app.tasks.spectra.spec import CLASSES
from training.cli import model_dir
from training.data.spectra_real import LOWZ_AGN_SOURCE, load_lamost_stars, load_real_validation
from training.metrics import classification_report, recall_report
from training.tasks.spectra.config import BRIGHT_SNR, TASK
from training.tasks.spectra.preprocessor import load_split, predict_in_batches
from training.tasks.spectra.stellar_types import real_train_stars, subclass_report, subtype_report



def redshift_report(true_z: np.ndarray, z: np.ndarray, z_err: np.ndarray) -> dict:
    """Share within 6,000 km/s (|Δz| / (1 + z) < 0.02, QuasarNET's criterion), its complement (the
    catastrophic rate) and the median |Δz| / (1 + z); and whether ``z_err`` is an honest 1σ among
    those within: the share with |Δz| ≤ z_err (0.68 if it were) and the median |Δz| / z_err (0.67)."""
    error = np.abs(z - true_z) / (1 + true_z)
    within = error < 0.02
    pulls = np.abs(z - true_z)[within] / np.maximum(z_err[within], 1e-12)
    share = lambda x: round(float(np.mean(x)), 4) if len(x) else 0.0  # noqa: E731
    return {
        "n": int(len(error)),
        "within_6000_km_s": share(within),
        "catastrophic_rate": round(1 - share(within), 4) if len(error) else 0.0,
        "median_abs_dz_over_1pz": round(float(np.median(error)), 6) if len(error) else 0.0,
        "within_z_err": share(pulls <= 1),
        "median_abs_dz_over_z_err": round(float(np.median(pulls)), 3) if len(pulls) else 0.0,
    }


def real_sky_report(spectra: list, outputs: dict) -> dict:
    """Classification over all real spectra and over median S/N ≥ 2, and redshifts of the real
    galaxies and quasars with a catalogue redshift: what the service answers for them."""
    labels = [s.label for s in spectra]
    predicted = [x.decode() for x in outputs["label"]]
    bright = np.array([s.median_snr >= BRIGHT_SNR for s in spectra])
    extragalactic = np.array([s.label in ("GALAXY", "QSO") and np.isfinite(s.z) for s in spectra])
    true_z = np.array([s.z for s in spectra])
    pick = lambda mask, values: [v for v, m in zip(values, mask) if m]  # noqa: E731
    return {
        "all": {**recall_report(labels, predicted, CLASSES), "unknown": predicted.count("UNKNOWN")},
        "bright": {**recall_report(pick(bright, labels), pick(bright, predicted), CLASSES), "unknown": pick(bright, predicted).count("UNKNOWN"), "min_median_snr": BRIGHT_SNR},
        **{
            f"redshift_{part}": redshift_report(true_z[rows], outputs["z"][rows], outputs["z_err"][rows])
            for part, rows in (("all", extragalactic), ("bright", extragalactic & bright))
        },
    }


def lamost_star_report(predict, stars: list, desc: str) -> dict:
    """LAMOST stars through the exported graph: the share answered STAR, the MK letters (and
    LAMOST subclasses where the graph gives them) against LAMOST's."""
    out = predict_in_batches(predict, np.stack([s.flux for s in stars]), desc=desc)
    labels = _label_indices(out)
    report = {
        "n": len(stars),
        "accuracy": round(float(np.mean(labels == CLASSES.index("STAR"))), 4),
        "predicted": {c: int(np.sum(labels == i)) for i, c in enumerate(CLASSES)},
        "subtype": subtype_report([s.subclass for s in stars], [x.decode() for x in out["subtype"]]),
    }
    if "subclass" in out:
        report["subclass"] = subclass_report([s.subclass for s in stars], [x.decode() for x in out["subclass"]])
    return report


def _label_indices(outputs: dict) -> np.ndarray:
    """The exported graph's labels (what the service answers) as indices into CLASSES."""
    return np.array([CLASSES.index(label.decode()) for label in outputs["label"]])


def evaluate_saved_model(version_dir: Path, data_dir: Path, test_per_class: int, cache_dir: Path) -> dict:
    """The synthetic test split, the real BOSS/DESI spectra (classes, redshifts) and the real LAMOST
    stars (classes, MK letters), each through the exported graph."""
    serve = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    predict = lambda x: serve(flux=tf.constant(x, tf.float32))  # noqa: E731
    test_x, test_y = load_split(data_dir, cache_dir, "test", test_per_class)
    synthetic = predict_in_batches(predict, test_x, desc="synthetic test")
    metrics = {"synthetic_test": classification_report(test_y, _label_indices(synthetic), CLASSES)}
    metrics["lamost_real_stars"] = lamost_star_report(predict, load_lamost_stars(data_dir), "real LAMOST stars")
    if (data_dir / "real_train").exists():
        _, held_out = real_train_stars(data_dir)
        metrics["real_train_held_out"] = {
            "objects": len({s.designation for s in held_out}),
            **lamost_star_report(predict, held_out, "real_train held-out stars"),
        }
    if (data_dir / "real_validation").exists():
        real = load_real_validation(data_dir)
        outputs = predict_in_batches(predict, np.stack([s.flux for s in real]), desc="real BOSS/DESI")
        for name, lowz in (("real_validation", False), ("real_lowz_agn", True)):
            rows = np.array([(s.source == LOWZ_AGN_SOURCE) == lowz for s in real])
            if rows.any():
                metrics[name] = real_sky_report([s for s, r in zip(real, rows) if r], {k: v[rows] for k, v in outputs.items()})
    return metrics


def headline_figures(metrics: dict) -> dict:
    if not metrics:
        return {}
    headline = {
        "macro_f1": metrics["synthetic_test"]["macro_f1"],
        "accuracy": metrics["synthetic_test"]["accuracy"],
        "real_star_accuracy": metrics["lamost_real_stars"]["accuracy"],
        "subtype_letter_accuracy": metrics["lamost_real_stars"]["subtype"]["letter_accuracy"],
        "subtype_within_one_letter": metrics["lamost_real_stars"]["subtype"]["within_one_letter"],
    }
    held_out = metrics.get("real_train_held_out")
    if held_out:
        headline.update(
            held_out_star_accuracy=held_out["accuracy"],
            held_out_subtype_letter_accuracy=held_out["subtype"]["letter_accuracy"],
            held_out_subtype_within_one_letter=held_out["subtype"]["within_one_letter"],
        )
    real = metrics.get("real_validation")
    if real:
        headline.update(
            real_balanced_recall=real["all"]["balanced_recall"],
            real_bright_balanced_recall=real["bright"]["balanced_recall"],
            real_bright_galaxy_recall=real["bright"]["per_class"]["GALAXY"]["recall"],
            real_bright_z_within_6000_km_s=real["redshift_bright"]["within_6000_km_s"],
        )
    if "real_lowz_agn" in metrics:
        headline["lowz_agn_qso_recall"] = metrics["real_lowz_agn"]["all"]["per_class"]["QSO"]["recall"]
    return headline


def evaluate(args: argparse.Namespace) -> None:
    version_dir = model_store.resolve_version(model_dir(args, TASK), args.version)
    metrics = evaluate_saved_model(version_dir, Path(args.data_dir), args.test_per_class, Path(args.cache_dir))
    report = metrics["synthetic_test"]
    print(f"\nsynthetic test: accuracy={report['accuracy']:.4f} macro-F1={report['macro_f1']:.4f}")
    print(f"  {'class':<10}{'P':>8}{'R':>8}{'F1':>8}{'support':>9}")
    for name, r in report["per_class"].items():
        print(f"  {name:<10}{r['precision']:>8.4f}{r['recall']:>8.4f}{r['f1']:>8.4f}{r['support']:>9}")
    for name, title in (("lamost_real_stars", "real LAMOST stars"), ("real_train_held_out", "real_train's held-out stars")):
        if name in metrics:
            stars = metrics[name]
            print(f"{title}: STAR for {stars['accuracy']:.4f} of {stars['n']} ({stars['predicted']}); "
                  f"MK letter right {stars['subtype']['letter_accuracy']:.4f}, within one {stars['subtype']['within_one_letter']:.4f}"
                  + (f"; subclass {stars['subclass']}" if "subclass" in stars else ""))
    for name, title in (("real_validation", "real BOSS/DESI"), ("real_lowz_agn", "real low-z AGN")):
        if name in metrics:
            _print_real(title, metrics[name])
    print(json.dumps({"task": TASK, "model": str(version_dir), **headline_figures(metrics), **metrics}, ensure_ascii=False))


def _print_real(title: str, real: dict) -> None:
    for part, subset in (("all", "all"), ("bright", f"median S/N ≥ {BRIGHT_SNR:g}")):
        r = real[part]
        recalls = ", ".join(f"{c} {v['recall']:.3f} (P {v['precision']:.3f}, n {v['support']})" for c, v in r["per_class"].items())
        print(f"{title}, {subset}: balanced recall {r['balanced_recall']:.4f}; {recalls}; UNKNOWN {r['unknown']} of {r['n']}")
        print(f"  confusion (true → predicted): {r['confusion']}")
        z = real[f"redshift_{part}"]
        print(f"  redshift of {z['n']} galaxies and quasars: {z['within_6000_km_s']:.4f} within 6,000 km/s, "
              f"median |Δz|/(1+z) {z['median_abs_dz_over_1pz']:.6f}; of those within, {z['within_z_err']:.2f} "
              f"within z_err (median |Δz|/z_err {z['median_abs_dz_over_z_err']:.2f})")
